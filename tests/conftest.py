from __future__ import annotations

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
