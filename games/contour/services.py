"""Contour race: the lobby queue, rooms, contour storage and scoring.

The engine (``games.engine.contour_race``) decides everything about a room; this layer keeps its
state in ``RaceRoom.state`` (one row lock per move, so any number of ASGI processes can serve one
room), answers the engine's service events (``ReadyToStart``: pick an image and ghosts;
``ContourSubmitted``: store the annotation; ``RoundEnded``: queue the scoring task), and
broadcasts what every participant may see once the transaction commits
(``tessera.realtime.broadcast_on_commit``, one ``group_send`` per move).

Time is the server's: every move is stamped with :func:`now_ms` here, never by the client.
Scoring and STAPLE never run inside a player's move: the round's end queues ``race_score_task``
after commit, and the consensus mask of the image is refreshed by
``annotate.tasks.consensus_mask_update_task`` once per round.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from annotate.consensus import COUNTED_STATUSES, contour_geometry
from annotate.models import Annotation, Dataset, GoldMask, Image
from annotate.selection import permitted_consent_sql
from consent.models import Consent
from games.contour import selectors
from games.contour.models import RaceEntry, RaceRoom, RaceSeat, RaceTicket
from games.engine import contour_race as engine
from games.engine.common import Event, InvalidMove
from games.engine.contours import dice as dice_of
from tessera.db import insert_unless_taken, instance_from_row, update_fields
from tessera.errors import ApplicationError, Conflict, NotPermitted
from tessera.realtime import broadcast_on_commit

logger = logging.getLogger(__name__)

LOBBY_GROUP = "race.lobby"
# Most recent counted contours an image's leave-one-out consensus is built from.
MAX_CONSENSUS_CONTOURS = 24
# A room nobody touched for this long is closed by the sweep.
STALE_ROOM_S = 30 * 60
# A round still unscored this long after its room last changed is queued for scoring again (its
# task was lost on the way: a broker outage at send time, a worker killed before it acked).
SCORE_RETRY_S = 60
MAX_POINTS = engine.ContourLimits.max_input_points


def now_ms() -> int:
    """Server clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def room_group(token: uuid.UUID) -> str:
    """Channel-layer group of every socket in one room."""
    return f"race.room.{token.hex}"


def lobby_user_group(user_id: int) -> str:
    """Channel-layer group of one player's lobby sockets (where "matched" arrives)."""
    return f"race.lobby.{user_id}"


def room_config(*, solo: bool) -> engine.RoomConfig:
    """Room rules; timings can be shortened through settings (tests, demos)."""
    return engine.RoomConfig(
        countdown_ms=getattr(settings, "RACE_COUNTDOWN_MS", 3_000),
        draw_ms=getattr(settings, "RACE_DRAW_MS", 60_000),
        # A lone player who chose ghosts gets them at once; a matched room waits for company.
        ghost_wait_ms=0 if solo else getattr(settings, "RACE_GHOST_WAIT_MS", 10_000),
    )


def lobby_wait_s() -> float:
    """How long a queued player waits for room-mates before racing ghosts instead."""
    return float(getattr(settings, "RACE_LOBBY_WAIT_S", 20))


# ------------------------------------------------------------------------------------- payloads
def _round_meta_for(room: RaceRoom, state: engine.RoomState) -> dict[str, Any]:
    """What the page needs besides the engine view; the image only once drawing has started."""
    meta = room.round_meta
    if not meta or state.round is None:
        return {}
    out = {
        "structure": state.round.structure,
        "reference_url": meta.get("reference_url"),
        "reference_outline": meta.get("reference_outline"),
    }
    if state.phase in (engine.DRAWING, engine.RESULTS):
        out["image_url"] = meta.get("image_url")
    if state.phase == engine.RESULTS and state.scored:
        out["consensus_outline"] = meta.get("consensus_outline")
    return out


def room_payload(room: RaceRoom, state: engine.RoomState, player_id: str | None) -> dict[str, Any]:
    """The room as ``player_id`` may see it (``None``: the broadcast every participant gets)."""
    return {
        "view": engine.view_for(state, player_id, now=now_ms()),
        "names": room.names,
        "meta": _round_meta_for(room, state),
        "wake_at": room.wake_at,
    }


# Events after which the page needs the names and the round's pictures again; every other
# broadcast leaves them out (outlines can be thousands of numbers, and every move broadcasts).
META_EVENT_KINDS = frozenset({"phase", "scored", "player_joined", "player_left"})


def _broadcast(
    room: RaceRoom,
    state: engine.RoomState,
    events: Sequence[Event],
    notices: Sequence[dict[str, Any]] = (),
) -> None:
    """One ``group_send`` per move, after commit: the events and the public view of the room."""
    payload = {"type": "room", "events": [*engine.broadcast_events(events), *notices]}
    full = room_payload(room, state, None)
    if not any(e.kind in META_EVENT_KINDS for e in events):
        del full["names"], full["meta"]
    payload.update(full)
    headers = {
        "seq": state.seq,
        "wake_at": full.get("wake_at"),
        "connected": connected_players(payload),
    }
    broadcast_on_commit(room_group(room.token), "race.room", payload, headers=headers)


def connected_players(payload: dict[str, Any]) -> list[str]:
    """The room's connected human players, in seat order (which socket ticks the room first)."""
    return [
        p["player_id"] for p in payload["view"]["players"] if p["connected"] and not p["is_ghost"]
    ]


def _lobby_changed() -> None:
    broadcast_on_commit(LOBBY_GROUP, "race.lobby", {"type": "lobby", **lobby_snapshot()})


# ---------------------------------------------------------------------------------------- lobby
def lobby_snapshot() -> dict[str, Any]:
    """Who waits on which race, and how many rooms are playing: the lobby's presence."""
    waiting = (
        RaceTicket.objects.select_related("player", "dataset")
        .order_by("waiting_since")
        .values_list("dataset__target_structure", "player__display_name", "player__username")[:200]
    )
    return {
        "waiting": [{"race": race, "name": name or user} for race, name, user in waiting],
        "rooms_open": RaceRoom.objects.filter(status=RaceRoom.Status.OPEN).count(),
    }


@dataclass(frozen=True)
class LobbyResult:
    """``room``: the token of the room the player was put in, or None while they wait."""

    room: uuid.UUID | None
    waiting: int = 0


def lobby_queue(*, player_id: int, slug: str) -> LobbyResult:
    """Queue the player for a race on dataset ``slug`` and match whoever can be matched.

    A player matched into a room hears it on their lobby group (``race.matched``); a player who
    has waited longer than :func:`lobby_wait_s` gets a room of their own with ghosts.
    """
    dataset = selectors.race_dataset_get(slug=slug)
    with transaction.atomic():
        ticket = RaceTicket.objects.select_for_update().filter(player_id=player_id).first()
        if ticket is None or ticket.dataset_id != dataset.pk:
            RaceTicket.objects.filter(player_id=player_id).delete()
            skill = selectors.player_skill(player_id=player_id, dataset_id=dataset.pk)
            RaceTicket.objects.create(
                player_id=player_id, dataset=dataset, skill=skill, waiting_since=timezone.now()
            )
        rooms = _match(dataset=dataset)
        _lobby_changed()
    return LobbyResult(room=rooms.get(player_id), waiting=_waiting_count(dataset))


def _waiting_count(dataset: Dataset) -> int:
    return RaceTicket.objects.filter(dataset=dataset).count()


def _match(*, dataset: Dataset) -> dict[int, uuid.UUID]:
    """Rooms for the dataset's waiting players (skill-matched), ghosts for the long-waiting."""
    tickets = list(RaceTicket.objects.select_for_update().filter(dataset=dataset))
    if not tickets:
        return {}
    now = now_ms()
    waiting = [
        engine.WaitingPlayer(str(t.player_id), t.skill, int(t.waiting_since.timestamp() * 1000))
        for t in tickets
    ]
    matches = engine.match_players(waiting, now)
    groups = [[int(p) for p in ids] for ids in matches.rooms]
    lonely_since = timezone.now() - timedelta(seconds=lobby_wait_s())
    # A long-waiting player races ghosts, where there are any; else they keep waiting for people.
    groups += [
        [t.player_id]
        for t in tickets
        if str(t.player_id) in matches.waiting
        and t.waiting_since <= lonely_since
        and selectors.ghosts_available(dataset=dataset, player_id=t.player_id)
    ]
    placed: dict[int, uuid.UUID] = {}
    for player_ids in groups:
        room = _room_create(dataset=dataset, player_ids=player_ids, solo=len(player_ids) == 1)
        for pid in player_ids:
            placed[pid] = room.token
            broadcast_on_commit(
                lobby_user_group(pid),
                "race.matched",
                {"type": "matched", "room": str(room.token), "solo": len(player_ids) == 1},
            )
    RaceTicket.objects.filter(player_id__in=list(placed)).delete()
    return placed


NO_GHOSTS = (
    "Nobody has raced these images before you, so there are no ghosts to race yet. "
    "Find players instead (you wait until someone joins), or pick another race."
)


def lobby_solo(*, player_id: int, slug: str) -> uuid.UUID:
    """A room of the player's own, raced against ghosts (replays of earlier players)."""
    dataset = selectors.race_dataset_get(slug=slug)
    if not selectors.ghosts_available(dataset=dataset, player_id=player_id):
        raise ApplicationError(NO_GHOSTS)
    with transaction.atomic():
        RaceTicket.objects.filter(player_id=player_id).delete()
        room = _room_create(dataset=dataset, player_ids=[player_id], solo=True)
        _lobby_changed()
    return room.token


def lobby_cancel(*, player_id: int) -> None:
    """Leave the queue (closing the lobby tab does the same)."""
    with transaction.atomic():
        if RaceTicket.objects.filter(player_id=player_id).delete()[0]:
            _lobby_changed()


def _room_create(*, dataset: Dataset, player_ids: list[int], solo: bool) -> RaceRoom:
    token = uuid.uuid4()
    at = now_ms()
    state = engine.new_room(token.hex, room_config(solo=solo), at=at)
    names = {}
    users = User.objects.in_bulk(player_ids)
    for pid in player_ids:
        skill = selectors.player_skill(player_id=pid, dataset_id=dataset.pk)
        state, _ = engine.apply(state, engine.Join(str(pid), at, skill))
        names[str(pid)] = users[pid].public_name()
    room = RaceRoom(
        token=token,
        dataset=dataset,
        state=state.to_dict(),
        names=names,
        wake_at=engine.next_wakeup(state),
        seed=secrets.randbits(62),
    )
    _round_prepare(room, state)
    room.save(force_insert=True)
    RaceSeat.objects.bulk_create([RaceSeat(room=room, player_id=pid) for pid in player_ids])
    logger.info("race room %s: %s players on %s", token, len(player_ids), dataset.slug)
    return room


# ----------------------------------------------------------------------------------------- rooms
@dataclass(frozen=True)
class RoomMessage:
    """A message a player sent to their room socket (already shape-checked by the consumer).

    ``kind``: ready | unready | progress | submit | leave | next | sync.
    """

    kind: str
    points: Any = None
    closed: bool = False


@dataclass
class RoomReply:
    """What goes back to the sender only: their view (``sync``, connect) and the events meant for
    them alone (a rejected contour)."""

    payload: dict[str, Any]
    private: list[dict[str, Any]] = field(default_factory=list)


@functools.cache
def _lock_sql(*, with_seat: bool) -> str:
    """The room's row by token, locked (``FOR UPDATE`` where the database has it), optionally
    only when a player has a seat: written once per process. Every move runs it, and the ORM's
    building and compiling of the same query was a fifth of a move's Python time (py-spy,
    bench/race_latency.py)."""
    q = connection.ops.quote_name
    room, seat = RaceRoom._meta, RaceSeat._meta
    columns = ", ".join(f"r.{q(f.column)}" for f in room.concrete_fields)
    sql = f"SELECT {columns} FROM {q(room.db_table)} r WHERE r.{q('token')} = %s"  # noqa: S608
    if with_seat:
        sql += (
            f" AND EXISTS (SELECT 1 FROM {q(seat.db_table)} s"  # noqa: S608
            f" WHERE s.{q('room_id')} = r.{q('id')} AND s.{q('player_id')} = %s)"
        )
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF r"
    return sql


def _locked(token: uuid.UUID, player_id: int | None = None) -> RaceRoom:
    """The room row, locked for this transaction; with ``player_id``, only if they have a seat
    (one query: the access check and the lock of every move). Read with a plain cursor and the
    ORM's own converters (a ``RawQuerySet`` spent as much again resolving its columns)."""
    params: list[Any] = [RaceRoom._meta.get_field("token").get_db_prep_value(token, connection)]
    if player_id is not None:
        params.append(player_id)
    with connection.cursor() as cursor:
        cursor.execute(_lock_sql(with_seat=player_id is not None), params)
        row = cursor.fetchone()
    if row is None:
        raise NotPermitted("No such room.")
    return instance_from_row(RaceRoom, row)


def _move_for(message: RoomMessage, pid: str, at: int) -> engine.Move | None:
    if message.kind in ("ready", "unready"):
        return engine.SetReady(pid, at, message.kind == "ready")
    if message.kind == "progress":
        return engine.ReportProgress(pid, at)
    if message.kind == "submit":
        points = message.points if isinstance(message.points, list) else []
        if len(points) > MAX_POINTS:
            points = points[: MAX_POINTS + 1]  # the engine refuses it with a reason
        pairs = tuple(tuple(p) if isinstance(p, list) else p for p in points)
        return engine.Submit(pid, at, pairs, closed=bool(message.closed))  # type: ignore[arg-type]
    if message.kind == "leave":
        return engine.Leave(pid, at)
    if message.kind == "next":
        return engine.NextRound(at, pid)
    return None


def room_connect(*, token: uuid.UUID, player_id: int) -> RoomReply:
    """A player's socket opened: resume their seat (reconnect) and return their view."""
    with transaction.atomic():
        room = _locked(token, player_id)
        state = engine.RoomState.from_dict(room.state)
        pid = str(player_id)
        if state.phase == engine.CLOSED:
            raise Conflict("This room is closed.")
        me = state.player(pid)
        if me is None:
            if state.phase != engine.LOBBY:
                raise Conflict("You left this room; a round is in progress.")
            skill = selectors.player_skill(player_id=player_id, dataset_id=room.dataset_id)
            move: engine.Move = engine.Join(pid, now_ms(), skill)
        else:
            move = engine.Reconnect(pid, now_ms())
        state, _ = _apply(room, state, move)
        return RoomReply(payload={"type": "you", **room_payload(room, state, pid)})


def room_message(*, token: uuid.UUID, player_id: int, message: RoomMessage) -> RoomReply:
    """Apply one player message to their room; returns what only the sender gets back.

    Raises ``NotPermitted`` without a seat, ``Conflict`` when the engine refuses the move (wrong
    phase, closed room). A contour that fails validation is not an error: the reply carries a
    ``submission_rejected`` event with the reason, and the player may submit again.
    """
    pid = str(player_id)
    with transaction.atomic():
        room = _locked(token, player_id)
        state = engine.RoomState.from_dict(room.state)
        move = _move_for(message, pid, now_ms())
        if move is None:  # sync: the view, nothing changes
            return RoomReply(payload={"type": "you", **room_payload(room, state, pid)})
        try:
            state, events = _apply(room, state, move)
        except InvalidMove as error:
            raise Conflict(str(error)) from None
        private = [
            e.to_dict()
            for e in events
            if e.kind in engine.PRIVATE_EVENT_KINDS and getattr(e, "player_id", None) == pid
        ]
        return RoomReply(payload={}, private=private)


def room_view(*, token: uuid.UUID, player_id: int) -> RoomReply | None:
    """The room as this player sees it now, read without a lock (a socket's resync); None when
    the room is closed, unknown or has no seat for them."""
    room = RaceRoom.objects.filter(token=token, seats__player_id=player_id).first()
    if room is None or room.status != RaceRoom.Status.OPEN:
        return None
    state = engine.RoomState.from_dict(room.state)
    return RoomReply(payload={"type": "you", **room_payload(room, state, str(player_id))})


def room_disconnect(*, token: uuid.UUID, player_id: int) -> None:
    """A player's socket closed: the room stops waiting for them (they may reconnect)."""
    with transaction.atomic():
        room = _locked(token, player_id)
        state = engine.RoomState.from_dict(room.state)
        me = state.player(str(player_id))
        if state.phase == engine.CLOSED or me is None or not me.connected:
            return
        _apply(room, state, engine.Disconnect(str(player_id), now_ms()))


def room_tick(*, token: uuid.UUID) -> int | None:
    """Apply the time-driven changes that are due (countdown over, ghost progress, deadline).

    Cheap when nothing is due, so every socket of a room may call it at ``wake_at``. Returns the
    room's next ``wake_at`` (None when nothing is scheduled or the room is closed).
    """
    with transaction.atomic():
        room = _locked(token)
        at = now_ms()
        if room.status != RaceRoom.Status.OPEN:
            return None
        if room.wake_at is not None and room.wake_at <= at:
            _apply(room, engine.RoomState.from_dict(room.state), engine.Tick(at))
        return room.wake_at


def _apply(
    room: RaceRoom, state: engine.RoomState, move: engine.Move
) -> tuple[engine.RoomState, list[Event]]:
    """Apply ``move`` and the moves its service events call for; persist; broadcast on commit."""
    pending: list[engine.Move] = [move]
    events: list[Event] = []
    notices: list[dict[str, Any]] = []
    ended: list[engine.RoundEnded] = []
    while pending:
        state, more = engine.apply(state, pending.pop(0))
        events += more
        for event in more:
            if isinstance(event, engine.ReadyToStart):
                moves, notice = _start_round(room, state, event)
                pending += moves
                if notice:
                    notices.append({"kind": "notice", "message": notice})
            elif isinstance(event, engine.ContourSubmitted):
                _contour_store(room, event)
            elif isinstance(event, engine.RoundEnded):
                ended.append(event)
    room.state = state.to_dict()
    room.wake_at = engine.next_wakeup(state)
    if state.phase == engine.CLOSED:
        room.status = RaceRoom.Status.CLOSED
    # The hot path (ready, progress, presence): one UPDATE of the state; names and the round's
    # pictures change only with a phase (a new round, its scores) or a new participant.
    fields = ("state", "wake_at", "status", "updated_at")
    if any(e.kind in META_EVENT_KINDS for e in events):
        fields += ("names", "round_meta")
    update_fields(room, fields)
    _broadcast(room, state, events, notices)
    # After the broadcast (on-commit callbacks run in order): with eager Celery the scoring would
    # otherwise delay the round-end message everyone waits for.
    for event in ended:
        _round_ended(room, event)
    return state, events


@dataclass(frozen=True)
class _RoundPlan:
    """A round's image and reference example (and ghosts), drawn with the room's generator."""

    round_no: int
    image_pk: int
    image_public_id: str
    width: int
    height: int
    structure: str
    reference_pk: int | None
    ghosts: tuple[selectors.GhostSource, ...] = ()

    def prepared(self) -> dict[str, Any]:
        """What ``round_meta["next"]`` keeps of it (prepared plans never have ghosts)."""
        return {
            "round_no": self.round_no,
            "image_pk": self.image_pk,
            "image_public_id": self.image_public_id,
            "width": self.width,
            "height": self.height,
            "structure": self.structure,
            "reference_pk": self.reference_pk,
        }


def _round_plan(
    *, seed: int, dataset: Dataset, humans: list[int], round_no: int, ghosts_wanted: int = 0
) -> _RoundPlan | None:
    """Draw round ``round_no``'s image among those every one of ``humans`` may outline, with
    ghosts when ``ghosts_wanted``, and its reference example; None when there is none. The
    generator is seeded by the room and the round, so the draw is the same whenever it is made."""
    rng = np.random.default_rng([seed, round_no])
    refs = selectors.reference_image_ids(dataset_id=dataset.pk)
    candidates = selectors.round_candidates(dataset=dataset, player_ids=humans, references=refs)
    ghosts: list[selectors.GhostSource] = []
    if ghosts_wanted:
        image = selectors.pick(selectors.with_ghosts(candidates, player_ids=humans), rng)
        if image is not None:
            ghosts = selectors.ghosts_for(
                image=image, player_ids=humans, wanted=ghosts_wanted, rng=rng
            )
    else:
        image = selectors.pick(candidates, rng)
    if image is None:
        return None
    return _RoundPlan(
        round_no=round_no,
        image_pk=image.pk,
        image_public_id=str(image.public_id),
        width=image.width,
        height=image.height,
        structure=dataset.target_structure,
        reference_pk=refs[int(rng.integers(len(refs)))] if refs else None,
        ghosts=tuple(ghosts),
    )


def _round_prepare(room: RaceRoom, state: engine.RoomState) -> None:
    """Draw the room's next round ahead (``round_meta["next"]``), off the players' moves: when a
    room is created, and when the scoring task has scored a round. The move that starts the
    round then only checks that the image and its reference are still in play
    (:func:`_prepared_plan`). Not for rooms that race ghosts (which ghosts depends on who is
    there when the round starts)."""
    humans = _humans(state)
    if len(humans) < state.config.min_players:  # ghosts would be wanted
        room.round_meta.pop("next", None)
        return
    plan = _round_plan(
        seed=room.seed, dataset=room.dataset, humans=humans, round_no=state.round_no + 1
    )
    if plan is None:
        room.round_meta.pop("next", None)
    else:
        room.round_meta = {**room.round_meta, "next": plan.prepared()}


def _prepared_plan(room: RaceRoom, round_no: int) -> _RoundPlan | None:
    """The plan drawn ahead for ``round_no`` if its image and reference are still in play under a
    consent that permits annotation (one query), else None (the round is drawn now)."""
    data = room.round_meta.get("next")
    if not data or data["round_no"] != round_no:
        return None
    wanted = sorted({data["image_pk"], data["reference_pk"]} - {None})
    permitted, params = permitted_consent_sql("c")
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {q(Image._meta.db_table)} i"  # noqa: S608
            f" JOIN {q(Consent._meta.db_table)} c ON c.id = i.consent_id"
            f" WHERE i.id IN ({', '.join(['%s'] * len(wanted))}) AND i.status = %s AND {permitted}",
            [*wanted, Image.Status.ACTIVE, *params],
        )
        in_play = cursor.fetchone()[0]
    if in_play != len(wanted):
        logger.info("race %s: the image drawn ahead for round %s left play", room.pk, round_no)
        return None
    return _RoundPlan(**data)


def _humans(state: engine.RoomState) -> list[int]:
    return [int(p.player_id) for p in state.players if not p.is_ghost and not p.left]


def _start_round(
    room: RaceRoom, state: engine.RoomState, event: engine.ReadyToStart
) -> tuple[list[engine.Move], str | None]:
    """Start the round on the image drawn ahead for it, or draw it now (and ghosts) with the
    room's seeded generator; or un-ready everyone with a notice when there is nothing to race on."""
    humans = _humans(state)
    round_no = state.round_no + 1
    plan = None if event.ghosts_wanted else _prepared_plan(room, round_no)
    if plan is None:
        plan = _round_plan(
            seed=room.seed,
            dataset=room.dataset,
            humans=humans,
            round_no=round_no,
            ghosts_wanted=event.ghosts_wanted,
        )
    if plan is None or event.players + len(plan.ghosts) < state.config.min_players:
        message = (
            "No earlier races to replay on an image you have not outlined yet: wait for other "
            "players, or try another race."
            if event.ghosts_wanted
            else "There is no image left that every player here can outline."
        )
        at = state.now
        unready = [engine.SetReady(str(pid), at, False) for pid in humans]
        return unready, message
    ref = (
        GoldMask.objects.select_related("image").get(image_id=plan.reference_pk)
        if plan.reference_pk is not None
        else None
    )
    room.names.update({g.replay.ghost_id: g.name for g in plan.ghosts})
    room.round_meta = {
        "image_pk": plan.image_pk,
        "image_url": reverse("annotate:image-file", args=[plan.image_public_id]),
        "reference_url": (
            reverse("annotate:image-file", args=[ref.image.public_id]) if ref else None
        ),
        "reference_outline": ref.polygons if ref else None,
    }
    spec = engine.RoundSpec(
        image_id=plan.image_public_id,
        width=plan.width,
        height=plan.height,
        structure=plan.structure,
        reference_image_id=str(ref.image.public_id) if ref else None,
    )
    return [engine.StartRound(state.now, spec, tuple(g.replay for g in plan.ghosts))], None


def _contour_key(room: RaceRoom, round_no: int) -> str:
    """Idempotency key of a player's contour: one per room and round (a retry stores nothing)."""
    return f"race:{room.token.hex}:{round_no}"


def _contour_store(room: RaceRoom, event: engine.ContourSubmitted) -> None:
    """Store an accepted contour as an annotation in image pixel coordinates, with its timing.

    Only while the image's labels count: a donor who withdrew mid-round (or an image sent to
    review) keeps the image out of the data; the player still sees their own outline and a score,
    nothing is stored. An image that retired mid-round (its consensus became confident from other
    rooms' contours) still takes the contour: it was drawn on a consented image in play when the
    round began, and it counts in the consensus and the export like any other.
    """
    image_pk = room.round_meta["image_pk"]
    if not _image_counts(image_pk):
        logger.info("race %s: image %s left play mid-round; contour not stored", room.pk, image_pk)
        return
    player_id = int(event.player_id)
    key = _contour_key(room, event.round_no)
    annotation = Annotation(
        player_id=player_id,
        idempotency_key=key,
        image_id=image_pk,
        geometry=contour_geometry(event.points, event.repairs),
        source=Annotation.Source.CONTOUR_RACE,
        response_ms=event.elapsed_ms,
    )
    # The engine accepts one contour per player and round, and the room's row lock orders the
    # moves, so a stored one is the exception (a state restored by hand): each row is inserted
    # unless it is there already, without a savepoint. Idempotent: the first stored contour of
    # this player and round stays, nothing doubles, and its entry is added if only the
    # annotation was stored.
    if not insert_unless_taken(annotation):
        stored = Annotation.objects.filter(player_id=player_id, idempotency_key=key).first()
        if stored is None:  # another constraint refused it: an error, not a duplicate
            raise IntegrityError(f"race {room.pk}: contour of player {player_id} not stored")
        logger.warning(
            "race %s: round %s of player %s already stored", room.pk, event.round_no, player_id
        )
        annotation = stored
    insert_unless_taken(
        RaceEntry(
            room=room,
            round_no=event.round_no,
            player_id=player_id,
            image_id=annotation.image_id,
            annotation=annotation,
            started_ms=min(event.started_ms, event.elapsed_ms),
            elapsed_ms=event.elapsed_ms,
        )
    )


def _image_counts(image_pk: int) -> bool:
    """Whether a contour on the image still goes into the data (``COUNTED_STATUSES``)."""
    table = connection.ops.quote_name(Image._meta.db_table)
    marks = ", ".join(["%s"] * len(COUNTED_STATUSES))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {table} WHERE id = %s AND status IN ({marks})",  # noqa: S608
            [image_pk, *COUNTED_STATUSES],
        )
        return cursor.fetchone() is not None


def _round_ended(room: RaceRoom, event: engine.RoundEnded) -> None:
    from games.contour.tasks import race_score_task

    race_score_task.delay_on_commit(room.pk, event.round_no)


# --------------------------------------------------------------------------------------- scoring
def _read_mask(file_field) -> np.ndarray:  # type: ignore[no-untyped-def]
    from PIL import Image as PILImage

    with file_field.open("rb") as f, PILImage.open(f) as pil:
        return np.asarray(pil.convert("L")) > 127


def _gold_mask(image: Image) -> np.ndarray | None:
    from ml.raster import polygons_to_mask

    gold = GoldMask.objects.filter(image=image).first()
    if gold is None:
        return None
    if gold.mask:
        mask = _read_mask(gold.mask)
        if mask.shape == (image.height, image.width):
            return mask
    return polygons_to_mask(
        [np.asarray(r, dtype=float) for r in gold.polygons], image.height, image.width
    )


def _consensus_dice(
    image: Image, masks: dict[str, np.ndarray], exclude_player: dict[str, int]
) -> tuple[dict[str, float], np.ndarray | None]:
    """Dice of each contour against the STAPLE consensus of every *other* counted contour on the
    image (leave-one-out: the player's own contours never judge them); and the all-contour
    consensus for the results overlay."""
    from annotate.consensus import contour_points
    from ml.raster import polygon_to_mask
    from ml.staple import staple

    rows = list(
        Annotation.objects.filter(image=image, is_counted=True, geometry__isnull=False)
        .order_by("-id")
        .values_list("player_id", "geometry")[:MAX_CONSENSUS_CONTOURS]
    )
    raster = [
        (player, polygon_to_mask(contour_points(g), image.height, image.width))
        for player, g in rows
    ]

    def consensus(stack: list[np.ndarray]) -> np.ndarray:
        return stack[0] if len(stack) == 1 else staple(np.stack(stack)).mask()

    out = {}
    for pid, mask in masks.items():
        others = [m for player, m in raster if player != exclude_player[pid]]
        if others:
            out[pid] = dice_of(mask, consensus(others))
    overall = consensus([m for _, m in raster]) if raster else None
    return out, overall


def race_round_score(*, room_id: int, round_no: int) -> bool:
    """Score a finished round: Dice against gold where the image has gold, else against the
    leave-one-out STAPLE consensus; the engine turns Dice and time into points.

    Idempotent (a retried task finds the round scored). Returns whether it scored now.
    """
    from ml.raster import mask_to_polygons, polygon_to_mask

    with transaction.atomic():
        room = RaceRoom.objects.select_for_update().filter(pk=room_id).first()
        if room is None:
            return False
        state = engine.RoomState.from_dict(room.state)
        if state.phase != engine.RESULTS or state.round_no != round_no or state.scored:
            return False
        image = Image.objects.get(pk=room.round_meta["image_pk"])
        submitted = [p for p in state.players if p.progress == engine.SUBMITTED and p.contour]
        masks = {
            p.player_id: polygon_to_mask(np.asarray(p.contour), image.height, image.width)
            for p in submitted
        }
        gold = _gold_mask(image)
        if gold is not None:
            dice = {pid: dice_of(m, gold) for pid, m in masks.items()}
            reference, shown = "gold", gold
        else:
            sources = {g.ghost_id: int(g.source_id) for g in state.ghosts}
            source_players = dict(
                Annotation.objects.filter(pk__in=sources.values()).values_list("pk", "player_id")
            )
            exclude = {
                p.player_id: (
                    source_players.get(sources.get(p.player_id, -1), -1)
                    if p.is_ghost
                    else int(p.player_id)
                )
                for p in submitted
            }
            dice, shown = _consensus_dice(image, masks, exclude)
            reference = "consensus"
        if shown is not None:
            rings = mask_to_polygons(shown)
            room.round_meta = {
                **room.round_meta,
                "consensus_outline": [r.tolist() for r in rings],
                "reference_kind": reference,
            }
        _round_prepare(room, state)
        move = engine.Scores(now_ms(), tuple(sorted(dice.items())), reference)
        state, _ = _apply(room, state, move)
        entries = RaceEntry.objects.filter(room=room, round_no=round_no)
        for entry in entries:
            p = state.player(str(entry.player_id))
            if p is None:
                continue
            entry.dice, entry.score = p.dice, p.score
            entry.reference = reference if p.dice is not None else ""
            entry.save(update_fields=["dice", "score", "reference"])
        if entries:
            from annotate.tasks import consensus_mask_update_task

            consensus_mask_update_task.delay_on_commit(image.pk)
    return True


# ----------------------------------------------------------------------------------------- sweep
def race_sweep() -> dict[str, int]:
    """Periodic: tick rooms whose timer is due with no socket left to do it, close rooms nobody
    touched for ``STALE_ROOM_S``, and match (or give ghosts to) players waiting in the lobby."""
    now = now_ms()
    due = list(
        RaceRoom.objects.filter(status=RaceRoom.Status.OPEN, wake_at__lte=now).values_list(
            "token", flat=True
        )[:500]
    )
    for token in due:
        room_tick(token=token)
    ticked = len(due)
    rescored = _rescore_lost_rounds()
    stale = timezone.now() - timedelta(seconds=STALE_ROOM_S)
    closed = RaceRoom.objects.filter(status=RaceRoom.Status.OPEN, updated_at__lt=stale).update(
        status=RaceRoom.Status.CLOSED
    )
    matched = 0
    for dataset in selectors.race_datasets().filter(race_tickets__isnull=False).distinct():
        with transaction.atomic():
            matched += len(_match(dataset=dataset))
            _lobby_changed()
    return {"ticked": ticked, "rescored": rescored, "closed": closed, "matched": matched}


def _rescore_lost_rounds() -> int:
    """Queue the scoring of rounds that ended but were never scored (the task is idempotent, so
    one still on its way only scores once); returns how many were queued."""
    from games.contour.tasks import race_score_task

    quiet_since = timezone.now() - timedelta(seconds=SCORE_RETRY_S)
    lost = RaceRoom.objects.filter(
        status=RaceRoom.Status.OPEN,
        updated_at__lt=quiet_since,
        state__phase=engine.RESULTS,
        state__scored=False,
    ).values_list("pk", "state__round_no")[:500]
    for room_id, round_no in lost:
        race_score_task.delay(room_id, round_no)
    return len(lost)


def race_rooms_forget_images(*, image_ids: Iterable[int]) -> int:
    """A donor withdrew: drop the outlines and links of these images from every race room's
    round data (the round image's consensus outline, a reference example's gold outline).
    Returns the number of rooms changed. Called inside the withdrawal transaction."""
    ids = list(image_ids)
    if not ids:
        return 0
    urls = [
        reverse("annotate:image-file", args=[public_id])
        for public_id in Image.objects.filter(pk__in=ids).values_list("public_id", flat=True)
    ]
    rooms = RaceRoom.objects.select_for_update().filter(
        Q(round_meta__image_pk__in=ids) | Q(round_meta__reference_url__in=urls)
    )
    changed = 0
    for room in rooms:
        meta = dict(room.round_meta)
        if meta.get("image_pk") in ids:
            meta.update(image_url=None, consensus_outline=None)
        if meta.get("reference_url") in urls:
            meta.update(reference_url=None, reference_outline=None)
        room.round_meta = meta
        room.save(update_fields=["round_meta", "updated_at"])
        changed += 1
    return changed
