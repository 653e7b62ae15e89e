"""Per-user notification socket: delayed points, review outcomes, export progress."""

from __future__ import annotations

from tessera.realtime import JsonSocketConsumer, user_group

UNAUTHENTICATED = 4401


class NotificationConsumer(JsonSocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:  # type: ignore[no-untyped-def]
        # The socket only pushes; a client message is answered, not acted on.
        await self.send_json({"type": "error", "message": "This socket does not accept messages."})

    async def notify(self, event: dict) -> None:
        await self.forward(event)
