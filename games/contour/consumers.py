"""Websockets of the contour race: the lobby (presence, queue, matches) and one socket per room.

Thin: authenticate, check the shape of a message, call a service through
``database_sync_to_async``, reply. Broadcasts leave from the services after commit; these
consumers only forward them. The origin check (``AllowedHostsOriginValidator``) and the session
authentication wrap every socket in ``tessera.asgi``.

Room timers: the server is the clock. Each broadcast carries ``wake_at`` (the next time-driven
change); every socket of the room arms a timer for it and asks ``room_tick``, which does the work
once (under the room's row lock) and is a no-op for the others. The ``race_sweep`` beat task does
the same for rooms nobody is connected to.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from accounts.access import access_has_role
from accounts.roles import Role
from games.contour import services
from tessera.errors import ApplicationError
from tessera.realtime import JsonSocketConsumer

logger = logging.getLogger(__name__)

UNAUTHENTICATED = 4401
FORBIDDEN = 4403
PLAYER_ROLES = (Role.VOLUNTEER, Role.CLINICIAN, Role.ADMIN)
# A room socket that heard nothing for this long reads the room itself (RaceRoomConsumer._watch).
RESYNC_S = 5.0
# Every socket of a room arms a timer for the room's next change: the first connected player's
# ticks on time, each other one this much later, so the first tick's broadcast usually re-arms
# them before they run (one locked tick per change instead of one per socket; a late one is a
# no-op, and one whose socket closed still leaves the others to tick).
TICK_STAGGER_S = 0.1
ROOM_KINDS = frozenset({"ready", "unready", "progress", "submit", "leave", "next", "sync"})


@database_sync_to_async
def _may_play(user) -> bool:  # type: ignore[no-untyped-def]
    return access_has_role(user, *PLAYER_ROLES)


async def _authenticate(consumer: AsyncJsonWebsocketConsumer) -> Any:
    """The scope's user when they may play, else close the socket and return None."""
    user = consumer.scope.get("user")
    if user is None or not user.is_authenticated:
        await consumer.close(code=UNAUTHENTICATED)
        return None
    if not await _may_play(user):
        await consumer.close(code=FORBIDDEN)
        return None
    return user


# SQLite has one writer at a time anyway (and the test database is a shared in-memory one).
_ONE_DB_THREAD = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
# Room moves of one server process run on this many threads (settings.RACE_ROOM_THREADS). Few:
# every database round trip of a move gives the GIL up and waits to get it back, so with six
# threads (the event loop's default pool on 2 cores) a burst of moves spent its time waiting on
# each other; 2 threads gave p95 30–48 ms where 6 gave 52–66 ms (docs/benchmarks.md).
_ROOM_THREADS = ThreadPoolExecutor(
    max_workers=max(1, getattr(settings, "RACE_ROOM_THREADS", 2)), thread_name_prefix="race-room"
)


def _off_loop(func: Any) -> Any:
    """``database_sync_to_async`` for room moves. On PostgreSQL they run on the room threads
    instead of the one thread-sensitive thread, so moves of different rooms overlap their
    database and channel-layer waits (each room is serialised by its row lock, not a thread)."""
    if _ONE_DB_THREAD:
        return database_sync_to_async(func, thread_sensitive=True)
    return database_sync_to_async(func, thread_sensitive=False, executor=_ROOM_THREADS)


def _error(message: str) -> dict[str, str]:
    return {"type": "error", "message": message}


class RaceLobbyConsumer(JsonSocketConsumer):
    """``{"type": "queue", "dataset": slug}``, ``{"type": "solo", "dataset": slug}``,
    ``{"type": "cancel"}``; answers ``lobby`` snapshots, ``queued`` and ``matched``."""

    async def connect(self) -> None:
        user = await _authenticate(self)
        if user is None:
            return
        self.user_id = user.pk
        self.groups_joined = [services.LOBBY_GROUP, services.lobby_user_group(user.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        snapshot = await database_sync_to_async(services.lobby_snapshot)()
        await self.send_json({"type": "lobby", **snapshot})

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "user_id"):
            return
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        await database_sync_to_async(services.lobby_cancel)(player_id=self.user_id)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        slug = content.get("dataset") if isinstance(content, dict) else None
        try:
            if kind in ("queue", "ping") and isinstance(slug, str):
                result = await database_sync_to_async(services.lobby_queue)(
                    player_id=self.user_id, slug=slug
                )
                if result.room is not None:
                    await self.send_json({"type": "matched", "room": str(result.room)})
                else:
                    await self.send_json({"type": "queued", "waiting": result.waiting})
            elif kind == "solo" and isinstance(slug, str):
                token = await database_sync_to_async(services.lobby_solo)(
                    player_id=self.user_id, slug=slug
                )
                await self.send_json({"type": "matched", "room": str(token), "solo": True})
            elif kind == "cancel":
                await database_sync_to_async(services.lobby_cancel)(player_id=self.user_id)
                await self.send_json({"type": "cancelled"})
            else:
                await self.send_json(_error("Unknown lobby message."))
        except ApplicationError as error:
            await self.send_json(_error(error.message))

    async def race_lobby(self, event: dict[str, Any]) -> None:
        await self.forward(event)

    async def race_matched(self, event: dict[str, Any]) -> None:
        await self.forward(event)


class RaceRoomConsumer(JsonSocketConsumer):
    """One player's socket in one room: resume on connect, moves in, room broadcasts out."""

    timer: asyncio.Task[None] | None = None
    timer_at: int | None = None
    watchdog: asyncio.Task[None] | None = None
    seq = -1  # the newest room view this socket passed on
    rank = 0  # this player's place among the room's connected players (TICK_STAGGER_S)
    heard_at = 0.0  # monotonic time of the last room view passed on

    async def connect(self) -> None:
        user = await _authenticate(self)
        if user is None:
            return
        self.user_id = user.pk
        self.token = uuid.UUID(str(self.scope["url_route"]["kwargs"]["token"]))
        self.group = services.room_group(self.token)
        try:
            reply = await database_sync_to_async(services.room_connect)(
                token=self.token, player_id=self.user_id
            )
        except ApplicationError:
            await self.close(code=FORBIDDEN)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self._passed_on(reply.payload["view"]["seq"], services.connected_players(reply.payload))
        await self.send_json(reply.payload)
        self._arm(reply.payload.get("wake_at"))
        self.watchdog = asyncio.ensure_future(self._watch())

    async def disconnect(self, code: int) -> None:
        for task in (self.timer, self.watchdog):
            if task is not None:
                task.cancel()
        if not hasattr(self, "group"):
            return
        await self.channel_layer.group_discard(self.group, self.channel_name)
        try:
            await database_sync_to_async(services.room_disconnect)(
                token=self.token, player_id=self.user_id
            )
        except ApplicationError:
            logger.debug("disconnect from a closed or unknown room %s", self.token)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind not in ROOM_KINDS:
            await self.send_json(_error("Unknown room message."))
            return
        message = services.RoomMessage(
            kind=kind, points=content.get("points"), closed=content.get("closed") is True
        )
        try:
            reply = await _off_loop(services.room_message)(
                token=self.token, player_id=self.user_id, message=message
            )
        except ApplicationError as error:
            await self.send_json(_error(error.message))
            return
        for private in reply.private:
            await self.send_json({"type": "private", **private})
        # Everything else reaches the sender with the room's broadcast (a reply built inside the
        # transaction could arrive after, and be older than, the broadcasts it caused).
        if kind == "sync":
            await self.send_json(reply.payload)
        if kind == "leave":
            # Broadcasts already on their way to this socket must not be sent once it closes.
            self.closing = True
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.close()

    async def race_room(self, event: dict[str, Any]) -> None:
        """A room broadcast (``services._broadcast``): the view as JSON text, with its ``seq``,
        ``wake_at`` and the ``connected`` players beside it."""
        # Moves of one room commit in order (row lock), but their broadcasts may overtake each
        # other; an older view must neither reach the page nor re-arm the timer.
        if event["seq"] < self.seq or getattr(self, "closing", False):
            return
        self._passed_on(event["seq"], event["connected"])
        await self.forward(event)
        self._arm(event["wake_at"])

    def _passed_on(self, seq: int, connected: list[str]) -> None:
        """Note the newest view passed on, and this socket's tick rank among ``connected``."""
        self.seq = seq
        self.heard_at = time.monotonic()
        me = str(self.user_id)
        self.rank = connected.index(me) if me in connected else len(connected)

    async def _watch(self) -> None:
        """Resync a socket that heard nothing from its room for ``RESYNC_S``.

        The channel layer can lose a group message: channels_redis pops a process's messages for
        all its sockets in one receive, and a socket that closes at that moment takes the popped
        message with it. Lost in the wrong place (the round's scores, which arm the next
        countdown), the room's other players would wait for good (seen in 200-player benchmark
        runs). So a quiet socket reads the room itself and passes on a newer view and its timer.
        """
        while True:
            await asyncio.sleep(RESYNC_S)
            if time.monotonic() - self.heard_at < RESYNC_S or getattr(self, "closing", False):
                continue
            self.heard_at = time.monotonic()
            try:
                reply = await _off_loop(services.room_view)(
                    token=self.token, player_id=self.user_id
                )
            except Exception:  # a database hiccup must not end the watch
                logger.exception("room %s: resync failed", self.token)
                continue
            if reply is None:
                continue
            if reply.payload["view"]["seq"] > self.seq:
                logger.warning(
                    "room %s: no view for %.0f s; socket of player %s resynced from seq %s to %s",
                    self.token,
                    RESYNC_S,
                    self.user_id,
                    self.seq,
                    reply.payload["view"]["seq"],
                )
                self._passed_on(
                    reply.payload["view"]["seq"], services.connected_players(reply.payload)
                )
                await self.send_json(reply.payload)
            self._arm(reply.payload.get("wake_at"))

    def _arm(self, wake_at: int | None) -> None:
        """Tick the room at ``wake_at`` (server epoch ms) unless a timer for it is armed."""
        if wake_at is None or wake_at == self.timer_at:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = wake_at
        delay = max(0.0, wake_at / 1000 - time.time()) + 0.01 + TICK_STAGGER_S * self.rank
        self.timer = asyncio.ensure_future(self._tick_after(delay))

    async def _tick_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.timer_at = None
        try:
            wake_at = await _off_loop(services.room_tick)(token=self.token)
        except ApplicationError:
            logger.debug("tick of a closed or unknown room %s", self.token)
            return
        # Usually the tick's broadcast re-arms; this covers a clock that fired a little early.
        self._arm(wake_at)
