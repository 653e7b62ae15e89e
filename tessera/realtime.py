"""The one way realtime events leave the server: from services, after the transaction commits."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    """Channel-layer group that reaches every open socket of one user."""
    return f"user.{user_id}"


def broadcast_on_commit(group: str, event_type: str, payload: dict[str, Any]) -> None:
    """Send `payload` to every consumer in `group` once the current transaction commits.

    Consumers receive it through a handler named after `event_type` (dots become underscores,
    as Channels requires) and forward it to their clients. Nothing is sent if the transaction
    rolls back, so clients never hear about writes that did not happen.
    """
    message = {"type": event_type, "payload": payload}

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            logger.warning("No channel layer configured; dropped %s for %s", event_type, group)
            return
        async_to_sync(layer.group_send)(group, message)

    transaction.on_commit(send)
