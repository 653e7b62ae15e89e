"""Reachability of every component the platform needs: database, cache, channel layer, broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from tessera.realtime import channel_release

logger = logging.getLogger(__name__)

# The channel-layer check: how often a ping is sent, and how long each waits to come back.
HEALTH_LAYER_TRIES = 5
HEALTH_LAYER_WAIT_S = 1.0


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    ok: bool
    backend: str
    detail: str = ""


def _check_database() -> ComponentStatus:
    backend = connection.vendor
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any driver error means "unreachable"
        return ComponentStatus("database", False, backend, type(exc).__name__)
    return ComponentStatus("database", True, backend)


def _check_cache() -> ComponentStatus:
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    key, value = f"health:{uuid.uuid4().hex}", uuid.uuid4().hex
    try:
        cache.set(key, value, timeout=10)
        ok = cache.get(key) == value
        cache.delete(key)
    except Exception as exc:  # noqa: BLE001 - any client error means "unreachable"
        return ComponentStatus("cache", False, backend, type(exc).__name__)
    return ComponentStatus("cache", ok, backend, "" if ok else "value not read back")


def _check_channel_layer() -> ComponentStatus:
    layer = get_channel_layer()
    backend = type(layer).__name__ if layer else "none"
    if layer is None:
        return ComponentStatus("channel_layer", False, backend, "not configured")

    async def round_trip() -> bool:
        channel = await layer.new_channel()
        receiving = asyncio.ensure_future(layer.receive(channel))
        try:
            # Sent again until it comes back: on the pub/sub layer a message published before
            # Redis has taken the channel's SUBSCRIBE is lost, which is not an outage.
            for _ in range(HEALTH_LAYER_TRIES):
                await layer.send(channel, {"type": "health.ping"})
                done, _ = await asyncio.wait({receiving}, timeout=HEALTH_LAYER_WAIT_S)
                if done:
                    return receiving.result().get("type") == "health.ping"
            return False
        finally:
            if receiving.done():
                await channel_release(layer, channel)
            else:  # cancelling the pending receive lets the channel go
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving

    try:
        ok = async_to_sync(round_trip)()
    except Exception as exc:  # noqa: BLE001 - any layer error means "unreachable"
        return ComponentStatus("channel_layer", False, backend, type(exc).__name__)
    return ComponentStatus("channel_layer", ok, backend)


def _check_broker() -> ComponentStatus:
    from tessera.celery import app

    if app.conf.task_always_eager:
        return ComponentStatus("broker", True, "eager", "tasks run in-process")
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            backend = conn.transport_cls
    except Exception as exc:  # noqa: BLE001 - any transport error means "unreachable"
        return ComponentStatus("broker", False, "celery", type(exc).__name__)
    return ComponentStatus("broker", True, str(backend))


def health_report() -> list[ComponentStatus]:
    """Check each component once; never raises."""
    return [_check_database(), _check_cache(), _check_channel_layer(), _check_broker()]
