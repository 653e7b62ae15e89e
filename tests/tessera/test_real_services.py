"""Proof that production mode really uses PostgreSQL, Redis and a separate Celery worker.

These run in the CI's second pass, which starts the services and a worker and sets
TESSERA_REAL_SERVICES=1. Without that variable they are skipped: the embedded run has no
broker or Redis by design.
"""

from __future__ import annotations

import os
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from consent.models import AuditEvent
from consent.services import audit_event_record
from tessera.tasks import ping

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(
        os.environ.get("TESSERA_REAL_SERVICES") != "1",
        reason="needs the PostgreSQL/Redis/Celery stack (CI second run: TESSERA_REAL_SERVICES=1)",
    ),
]


@pytest.mark.django_db
def test_rows_are_written_to_postgresql():
    audit_event_record(actor_id=None, action="services.probe", target_type="probe", target_id="1")

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM consent_auditevent WHERE action = %s", ["services.probe"]
        )
        count = cursor.fetchone()[0]

    assert connection.vendor == "postgresql"
    assert version.startswith("PostgreSQL")
    assert count == 1
    assert AuditEvent.objects.filter(action="services.probe").count() == 1


@pytest.mark.django_db
def test_a_statement_run_often_is_prepared_once_on_its_connection():
    """Server-side binding with prepared statements (DATABASE_PREPARE_THRESHOLD, default 5)."""
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    marker = f"probe-{uuid.uuid4().hex}"
    sql = f"SELECT count(*) FROM consent_auditevent WHERE action = %s /* {marker} */"  # noqa: S608
    with connection.cursor() as cursor:
        for _ in range(threshold + 1):
            cursor.execute(sql, ["services.probe"])
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            [f"%{marker}%"],
        )
        prepared = cursor.fetchone()[0]

    assert threshold == 5
    assert prepared == 1


def test_task_runs_in_a_separate_worker_process():
    assert settings.CELERY_TASK_ALWAYS_EAGER is False

    result = ping.delay().get(timeout=60)

    assert result["pid"] != os.getpid()
    assert result["db_vendor"] == "postgresql"


def test_messages_travel_through_the_redis_channel_layer():
    layer = get_channel_layer()
    assert type(layer).__module__.startswith("channels_redis")

    async def round_trip():
        channel = await layer.new_channel()
        group = f"probe.{uuid.uuid4().hex}"
        await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "probe.message", "value": 42})
        return await layer.receive(channel)

    assert async_to_sync(round_trip)() == {"type": "probe.message", "value": 42}


def test_cache_is_redis():
    key = f"probe:{uuid.uuid4().hex}"
    cache.set(key, "value", timeout=30)

    assert settings.CACHES["default"]["BACKEND"] == "tessera.cache.RedisCache"
    assert cache.get(key) == "value"
    client = cache._cache.get_client(key)
    assert client.exists(cache.make_and_validate_key(key)) == 1


@pytest.mark.django_db(transaction=True)
async def test_health_checks_leave_no_channel_subscribed(monkeypatch):
    """A server answers health checks for months on one event loop: each check's channel must be
    let go in Redis, not left subscribed (the pub/sub layer keeps it until a receive on it is
    cancelled)."""
    import redis
    from asgiref.sync import sync_to_async

    from tessera.health import _check_channel_layer

    layer = get_channel_layer()
    created = []
    new_channel = layer.new_channel

    async def recording_new_channel(*args, **kwargs):
        created.append(await new_channel(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(layer, "new_channel", recording_new_channel)
    # In this event loop, as in a server: the check's async part runs on the running loop.
    for _ in range(3):
        assert (await sync_to_async(_check_channel_layer)()).ok

    client = redis.Redis.from_url(settings.REDIS_URL)
    assert len(created) == 3
    assert [n for n in client.pubsub_numsub(*created) if n[1]] == []


async def test_a_closed_sockets_channel_is_let_go_with_its_backlog():
    """A message that reached a socket while it was closing must not keep its channel
    subscribed in Redis (the pub/sub layer frees a channel only when a receive is cancelled)."""
    import asyncio

    import redis

    from tessera.realtime import channel_release

    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = f"probe.{uuid.uuid4().hex}"
    await layer.group_add(group, channel)
    await layer.group_send(group, {"type": "probe.message"})  # the closing socket's backlog
    await asyncio.sleep(0.3)  # the layer's reader has queued it by now
    await layer.group_discard(group, channel)

    await channel_release(layer, channel)

    client = redis.Redis.from_url(settings.REDIS_URL)
    assert client.pubsub_numsub(channel) == [(channel.encode(), 0)]
