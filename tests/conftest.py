from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from accounts.roles import Role
from tests.factories import user_with_role


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    # Hashing is not under test here; PBKDF2 would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Tests talk plain HTTP to the test client, also in the CI run with production settings.
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _tasks_run_in_process(request):
    """Run Celery tasks eagerly, also in the CI run that has a real worker.

    The worker cannot see a test's uncommitted (or test-database) rows; only the tests marked
    `services` exercise the real worker on purpose.
    """
    from tessera.celery import app

    if request.node.get_closest_marker("services"):
        yield
        return
    old = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = old


@pytest.fixture(autouse=True)
def _own_realtime_and_cache(settings, worker_id):
    """A fresh channel layer object per test; on Redis, a channel prefix and a cache database
    per test process.

    channels_redis keeps its receive state (lock, buffers, the event loop that receives) on the
    layer object, while every async test runs on an event loop of its own: a socket one test left
    behind could make a later test's receive wait forever. The test processes of the CI run share
    one Redis server: their databases hand out the same user ids (so per-user groups crossed), and
    ``cache.clear()`` is a FLUSHDB, which wiped the other process's cache and channel groups
    (broadcasts of the race e2e test never arrived). Changing these settings makes Channels and
    Django drop the layer and cache objects built before.
    """
    index = int(worker_id[2:]) if worker_id.startswith("gw") else 0
    layer = {**settings.CHANNEL_LAYERS["default"]}
    if "prefix" in layer.get("CONFIG", {}):
        layer["CONFIG"] = {**layer["CONFIG"], "prefix": f"{layer['CONFIG']['prefix']}-{worker_id}"}
    settings.CHANNEL_LAYERS = {**settings.CHANNEL_LAYERS, "default": layer}
    cache = {**settings.CACHES["default"]}
    if cache["BACKEND"].endswith("RedisCache"):
        db = 10 + index
        assert db < 16, "one Redis cache database per test process: at most 6 processes"
        cache["LOCATION"] = urlsplit(cache["LOCATION"])._replace(path=f"/{db}").geturl()
        settings.CACHES = {**settings.CACHES, "default": cache}
    else:
        # The in-memory cache outlives a test, but SQLite hands a rolled-back test's row ids
        # out again: a later test's dataset would inherit, say, its consensus counter.
        from django.core.cache import cache as default_cache

        default_cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def volunteer(db):
    return user_with_role(Role.VOLUNTEER)


@pytest.fixture
def clinician(db):
    return user_with_role(Role.CLINICIAN)


@pytest.fixture
def researcher(db):
    return user_with_role(Role.RESEARCHER)


@pytest.fixture
def donor_user(db):
    from consent.services import donor_create

    user = user_with_role(Role.DONOR)
    donor_create(user_id=user.pk)
    return user
