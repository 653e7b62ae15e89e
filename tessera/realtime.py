"""The one way realtime events leave the server: from services, after the transaction commits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    """Channel-layer group that reaches every open socket of one user."""
    return f"user.{user_id}"


def broadcast_on_commit(
    group: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    headers: dict[str, Any] | None = None,
) -> None:
    """Send `payload` to every consumer in `group` once the current transaction commits.

    Consumers receive it through a handler named after `event_type` (dots become underscores,
    as Channels requires) and forward it to their clients. Nothing is sent if the transaction
    rolls back, so clients never hear about writes that did not happen.

    The payload travels as its JSON text, encoded once here (in the sending thread, not on an
    event loop); a consumer forwards it as it is (``JsonSocketConsumer.forward``), so a room of
    four costs one encoding instead of four, and the channel layer packs one string instead of
    a nested dict per socket. ``headers`` (small, JSON-able) ride beside the text for consumers
    that decide something before forwarding (a race socket: the view's sequence number).
    """
    if headers and {"type", "text"} & headers.keys():
        raise ValueError("headers may not replace the message's type or text")

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            logger.warning("No channel layer configured; dropped %s for %s", event_type, group)
            return
        # Encoded here, after the commit: not under the transaction's row locks, and not at all
        # when it rolls back.
        message = {"type": event_type, "text": json.dumps(payload), **(headers or {})}
        async_to_sync(layer.group_send)(group, message)

    transaction.on_commit(send)


async def channel_release(layer: Any, channel: str) -> None:
    """Let a consumer's channel go in the layer: its subscription and its queue.

    channels_redis' pub/sub layer frees a channel only when a pending ``receive`` on it is
    cancelled. Channels cancels the consumer's own receive when the consumer ends, but when a
    message reached the socket while it was disconnecting, that receive has already finished and
    the cancel does nothing: the Redis subscription and an unbounded queue stayed behind for every
    such socket. A receive started and cancelled here frees it (messages still queued for a closed
    socket are dropped). Harmless on the in-memory layer, which drops an empty queue likewise.
    """
    for _ in range(100):  # a closed socket's backlog is never this long
        waiter = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            return
        waiter.exception()  # a queued message for the closed socket: dropped, look again


class JsonSocketConsumer(AsyncJsonWebsocketConsumer):
    """The base of Tessera's websockets: Channels' JSON consumer without a thread hop per message.

    Channels (4.2+) runs ``close_old_connections`` on the one thread-sensitive thread before
    every message it dispatches: each frame in and each group message out (a race broadcast to 4
    sockets makes 4) waits for that thread and the GIL handoffs, while the event loop has no
    database connection to close. Every database call of these consumers goes through
    ``database_sync_to_async``, which closes old connections in its own thread, before and after.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        try:
            await super().websocket_disconnect(message)
        finally:
            if self.channel_layer is not None and getattr(self, "channel_name", None):
                await channel_release(self.channel_layer, self.channel_name)

    async def forward(self, event: dict[str, Any]) -> None:
        """Pass a broadcast (``broadcast_on_commit``) on to the client, as encoded there."""
        await self.send(text_data=event["text"])
