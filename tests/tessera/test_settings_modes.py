"""The embedded default and the production mode, as an operator starts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DATABASE_URL": "postgres://tessera:secret@db.internal:5432/tessera",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "CELERY_BROKER_URL": "redis://cache.internal:6379/1",
    "SECRET_KEY": "f3T!q9z@Lw2#pR8v$Xk5^mN1&bC7*hJ4(dG6)sY0-uE3+aQ9=oI2_lZ8~tW5",
    "ALLOWED_HOSTS": "tessera.example.org",
}


def _clean_env() -> dict[str, str]:
    """Only what a shell needs: none of the settings variables this test process may carry."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TESSERA_DATA_DIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**_clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with the project's settings module and only ``env`` besides a shell's."""
    return subprocess.run(  # noqa: S603 - our own interpreter with a fixed script
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**_clean_env(), **env, "DJANGO_SETTINGS_MODULE": "tessera.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_variables():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_in_memory_channel_layer_without_debug_warns():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "REDIS_URL"}

    result = _manage("check", env=env)

    assert "tessera.W001" in result.stdout + result.stderr


def test_production_refuses_to_start_without_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}

    result = _manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_select_the_real_backends():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        "s.CACHES['default']['BACKEND'], s.CELERY_TASK_ALWAYS_EAGER, s.DEBUG)"
    )
    result = _python(code, PRODUCTION_ENV)

    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "channels_redis.pubsub.RedisPubSubChannelLayer",
        "tessera.cache.RedisCache",
        "False",
        "False",
    ], result.stderr


def test_embedded_default_needs_no_variables():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        "s.CACHES['default']['BACKEND'], s.CELERY_TASK_ALWAYS_EAGER, "
        "'WAL' in s.DATABASES['default']['OPTIONS']['init_command'])"
    )
    result = _python(code, {})

    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
        "django.core.cache.backends.locmem.LocMemCache",
        "True",
        "True",
    ], result.stderr


def test_production_database_connections_are_pooled_not_kept():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "d = s.DATABASES['default']; "
        "print(d['CONN_MAX_AGE'], d.get('OPTIONS', {}).get('pool', {}).get('max_size'))"
    )
    cases = ({}, {"DATABASE_POOL_SIZE": "4"}, {"DATABASE_POOL_SIZE": "0"})
    runs = [
        _python(code, {**PRODUCTION_ENV, **extra})
        for extra in (*cases, {"DATABASE_CONN_MAX_AGE": "60"})
    ]

    # Pooled by default, a size of 0 turns the pool off; kept connections and a pool exclude
    # each other (a clear error, not Django's at the first query).
    assert [r.stdout.split() for r in runs[:3]] == [["0", "10"], ["0", "4"], ["0", "None"]]
    assert runs[3].returncode != 0
    assert "DATABASE_CONN_MAX_AGE and DATABASE_POOL_SIZE exclude each other" in runs[3].stderr
    pooled = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={**PRODUCTION_ENV, "DATABASE_POOL_SIZE": "4"},
    )
    assert pooled.returncode == 0, pooled.stdout + pooled.stderr


def test_production_prepares_statements_unless_turned_off():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "o = s.DATABASES['default'].get('OPTIONS', {}); "
        "print(o.get('server_side_binding'), o.get('prepare_threshold'))"
    )
    runs = [
        _python(code, {**PRODUCTION_ENV, **extra})
        for extra in ({}, {"DATABASE_PREPARE_THRESHOLD": "2"}, {"DATABASE_PREPARE_THRESHOLD": "0"})
    ]

    assert [r.stdout.split() for r in runs] == [
        ["True", "5"],
        ["True", "2"],
        ["None", "None"],
    ], [r.stderr for r in runs]


def test_the_channel_layer_prefix_carries_the_redis_database():
    """Redis pub/sub ignores database numbers: two deployments on two databases of one Redis must
    not share channel names (user groups would reach the other deployment's sockets)."""
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CHANNEL_LAYERS['default']['CONFIG']['prefix'])"
    )
    prefixes = []
    urls = (
        "redis://cache.internal:6379/0",
        "redis://cache.internal:6379/3",
        "redis://cache.internal:6379?db=4",
        "unix:///run/redis.sock?db=2",
        "unix:///run/redis.sock",
    )
    for url in urls:
        result = _python(code, {**PRODUCTION_ENV, "REDIS_URL": url})
        prefixes.append(result.stdout.strip())

    assert prefixes == ["tessera.0.", "tessera.3.", "tessera.4.", "tessera.2.", "tessera.0."], (
        result.stderr
    )


def test_race_room_moves_run_on_the_configured_number_of_threads():
    script = (
        "import django; django.setup();"
        "from games.contour import consumers;"
        "print(consumers._ROOM_THREADS._max_workers)"
    )
    for env, expected in (({}, "2"), ({"RACE_ROOM_THREADS": "5"}, "5")):
        result = _python(script, {**PRODUCTION_ENV, **env})
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected
