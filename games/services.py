"""Match-three sessions: start or resume a level, apply a batch of moves, store labels.

The engine (``games.engine.match3``) decides everything about the board; this layer persists its
state, feeds it tiles from the next-images selector, times answers on the server, and turns its
``Label``/``TooFast`` events into annotations through ``annotate.labelling``. Moves of one session
are applied one request at a time (``select_for_update`` on the session row); each move carries a
client idempotency key, so a retried batch gets the stored results back instead of being replayed.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotate.labelling import LabelInput, labels_submit
from annotate.models import Annotation, Dataset, Image
from annotate.selection import next_images_select
from games.engine import match3, progression
from games.engine.common import InvalidMove
from games.levels import reference_image_pks
from games.models import GameSession, ServedImage, SessionMove
from games.scoring import MoveTally, player_stats_locked, stats_record_moves
from games.selectors import (
    dataset_with_classes,
    levels_for_dataset,
    player_dataset_metrics,
    player_dataset_progress,
)
from tessera import db
from tessera.errors import ApplicationError, Conflict, NotPermitted

logger = logging.getLogger(__name__)

MAX_MOVES_PER_BATCH = 60


def now_ms() -> int:
    """Server clock in epoch milliseconds (a function, so benchmarks can simulate thinking time)."""
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------------------- moves in
@dataclass(frozen=True)
class MoveInput:
    """A move as the client sent it. ``kind``: judge | swap | quit."""

    key: str
    kind: str
    tile: int | None = None
    other: int | None = None
    class_index: int | None = None
    client_ms: int | None = None


@dataclass(frozen=True)
class MoveResult:
    key: str
    outcome: str  # applied | rejected | duplicate
    events: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


@dataclass(frozen=True)
class SessionView:
    """What the client receives: the session token, the public board and per-move results."""

    token: UUID
    view: dict[str, Any]
    results: list[MoveResult] = field(default_factory=list)
    badges: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------- helpers
def _class_rows(dataset: Dataset) -> list[Any]:
    return list(dataset.classes.all())


def session_public_view(session: GameSession, state: match3.Match3State) -> dict[str, Any]:
    """``match3.public_view`` with the dataset's own class colours and shapes and the modality."""
    view = match3.public_view(state)
    for entry, cls in zip(view["classes"], _class_rows(session.dataset), strict=True):
        entry["colour"] = cls.colour
        entry["shape"] = cls.shape
        entry["code"] = cls.code
    view["delayed_score"] = session.delayed_score
    view["modality"] = session.dataset.modality
    view["dataset"] = session.dataset.slug
    return view


Served = dict[str, tuple[int, str]]  # public id -> (image pk, status) of a session's images


def _serve(session: GameSession, image_ids: list[int]) -> set[int]:
    """Record ``image_ids`` as served in ``session``; returns those this session got.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` written once (``tessera.db``): when
    another session of this player took some of the same images at the same moment, the unique
    (player, image) constraint skips those rows and this session keeps what it got.
    """
    inserted = db.insert_rows(
        ServedImage,
        ("player_id", "image_id", "session_id"),
        [(session.player_id, pk, session.pk) for pk in image_ids],
        unless_taken=True,
        returning=("image_id",),
    )
    return {pk for (pk,) in inserted}


class _Supplier:
    """Feeds one request's ``NeedTiles``: the player's gold rate and the dataset's reference
    images are read once per request (on first need), not once per refill."""

    def __init__(
        self,
        session: GameSession,
        rng: np.random.Generator,
        served: Served,
        *,
        gold_rate: float | None = None,
    ) -> None:
        self.session = session
        self.rng = rng
        self.served = served
        self._gold_rate = gold_rate
        self._exclude: tuple[int, ...] | None = None

    def supply(self, state: match3.Match3State, count: int) -> tuple[match3.Match3State, list[Any]]:
        session = self.session
        if self._gold_rate is None:
            metrics = player_dataset_metrics(player_id=session.player_id, dataset=session.dataset)
            self._gold_rate = progression.gold_rate(metrics)
        if self._exclude is None:
            self._exclude = reference_image_pks(dataset=session.dataset)
        chosen = next_images_select(
            player_id=session.player_id,
            dataset=session.dataset,
            count=count,
            gold_rate=self._gold_rate,
            rng=self.rng,
            exclude_image_ids=self._exclude,
        )
        mine = _serve(session, [s.image_id for s in chosen])
        order = {c.pk: k for k, c in enumerate(_class_rows(session.dataset))}
        tiles = tuple(
            match3.TileSpec(str(s.public_id), order[s.gold_class_id] if s.gold_class_id else None)
            for s in chosen
            if s.image_id in mine
        )
        self.served.update(
            {
                str(s.public_id): (s.image_id, Image.Status.ACTIVE)
                for s in chosen
                if s.image_id in mine
            }
        )
        return match3.apply(state, match3.SupplyTiles(tiles, exhausted=len(chosen) < count))

    def feed(
        self, state: match3.Match3State, events: list[Any]
    ) -> tuple[match3.Match3State, list[Any]]:
        """Answer the engine's ``NeedTiles`` requests (a few rounds at most)."""
        out = list(events)
        pending = [e for e in events if isinstance(e, match3.NeedTiles)]
        for _ in range(3):
            if not pending:
                break
            state, more = self.supply(state, sum(e.count for e in pending))
            out += more
            pending = [e for e in more if isinstance(e, match3.NeedTiles)]
        return state, out


def _mark_shown(session: GameSession, state: match3.Match3State, at_ms: int) -> None:
    shown = {k: v for k, v in session.shown_at.items()}
    on_board = {str(t.tile_id) for row in state.board for t in row if t is not None}
    shown = {k: v for k, v in shown.items() if k in on_board}
    for tile_id in on_board:
        shown.setdefault(tile_id, at_ms)
    session.shown_at = shown


# ------------------------------------------------------------------------------------- sessions
def session_start(*, player_id: int, dataset: Dataset, level_id: str) -> SessionView:
    """Start ``level_id`` of ``dataset`` for this player, or resume the one they left open.

    Raises ``NotPermitted`` for a level that does not exist or is still locked, and ``Conflict``
    when the dataset has no image left for this player.
    """
    open_session = db.instance(
        GameSession,
        "player_id = %s AND dataset_id = %s AND level_id = %s AND status = %s",
        [player_id, dataset.pk, level_id, GameSession.Status.PLAYING.value],
    )
    if open_session is not None:
        return session_resume(player_id=player_id, token=open_session.token)
    levels = {lv.level_id: lv for lv in levels_for_dataset(dataset=dataset)}
    config = levels.get(level_id)
    if config is None:
        raise NotPermitted("No such level.")
    metrics, completed = player_dataset_progress(player_id=player_id, dataset=dataset)
    unlocked = progression.unlocked_levels(list(levels.values()), metrics, completed)
    if level_id not in unlocked:
        raise NotPermitted("This level is still locked.")
    seed = secrets.randbits(32)
    rng = np.random.default_rng(seed)
    try:
        with transaction.atomic():
            empty = match3.Match3State(
                config=config, board=(), queue=(), seed=seed, lives=config.lives
            )
            session = GameSession.objects.create(
                player_id=player_id, dataset=dataset, level_id=level_id, state=empty.to_dict()
            )
            wanted = config.rows * config.cols + config.queue_target
            state, _ = match3.new_game(config, (), seed=seed)
            supplier = _Supplier(session, rng, {}, gold_rate=progression.gold_rate(metrics))
            state, events = supplier.supply(state, wanted)
            state, _ = supplier.feed(state, events)
            if not any(t is not None for row in state.board for t in row):
                raise Conflict("You have seen every image of this dataset. Thank you!")
            session.state = state.to_dict()
            _mark_shown(session, state, now_ms())
            db.update_fields(session, ("state", "shown_at", "updated_at"))
    except IntegrityError:
        # A second tab started the same level at the same moment: resume that one.
        existing = GameSession.objects.get(
            player_id=player_id,
            dataset=dataset,
            level_id=level_id,
            status=GameSession.Status.PLAYING,
        )
        return session_resume(player_id=player_id, token=existing.token)
    logger.info("session %s started: player %s level %s", session.pk, player_id, level_id)
    return SessionView(token=session.token, view=session_public_view(session, state))


def _session_for_player(player_id: int, token: UUID, *, lock: bool) -> GameSession:
    """The player's session with its dataset and the dataset's classes: three reads whose SQL is
    written once (``tessera.db``); the ORM built and compiled the same join and prefetch on every
    move request, five times the CPU of the reads themselves."""
    token_db = GameSession._meta.get_field("token").get_db_prep_value(token, connection)
    session = db.instance(
        GameSession, "token = %s AND player_id = %s", [token_db, player_id], lock=lock
    )
    if session is None:
        raise NotPermitted("No such game.")
    dataset = dataset_with_classes("id = %s", [session.dataset_id])
    assert dataset is not None  # noqa: S101 - a protected foreign key
    session.dataset = dataset
    return session


def session_resume(*, player_id: int, token: UUID) -> SessionView:
    """The current public view of a session (after a reload or an interrupted connection)."""
    with transaction.atomic():
        session = _session_for_player(player_id, token, lock=True)
        state = match3.Match3State.from_dict(session.state)
        before = dict(session.shown_at)
        _mark_shown(session, state, now_ms())
        if session.shown_at != before:
            session.save(update_fields=["shown_at", "updated_at"])
    return SessionView(token=session.token, view=session_public_view(session, state))


# ------------------------------------------------------------------------------------- moves
def _engine_move(
    move: MoveInput, state: match3.Match3State, session: GameSession, at_ms: int
) -> match3.Move:
    if move.kind == "quit":
        return match3.Quit()
    if move.kind == "swap":
        if move.tile is None or move.other is None:
            raise InvalidMove("a swap needs two tiles")
        return match3.Swap(move.tile, move.other)
    if move.kind != "judge" or move.tile is None or move.class_index is None:
        raise InvalidMove("unknown move")
    shown = session.shown_at.get(str(move.tile))
    server_ms = max(0, at_ms - shown) if shown is not None else 0
    # The server's clock bounds the claim: the client can only report a shorter time (it leaves
    # out the network), never a longer one than the server saw.
    response_ms = server_ms if move.client_ms is None else min(server_ms, max(0, move.client_ms))
    return match3.Judge(move.tile, move.class_index, response_ms)


def _tile_image(state: match3.Match3State, tile_id: int | None) -> str | None:
    if tile_id is None:
        return None
    pos = match3.find_tile(state.board, tile_id)
    if pos is None:
        return None
    tile = state.board[pos[0]][pos[1]]
    return tile.image_id if tile is not None else None


def _move_counts(session: GameSession, keys: list[str]) -> tuple[int, int]:
    """How many moves the session has, and how many of them have one of ``keys`` (a retry)."""
    marks = ", ".join(["%s"] * len(keys))
    sql = (
        'SELECT COUNT(*), COALESCE(SUM(CASE WHEN "key" IN ('  # noqa: S608 - marks only
        + marks
        + ") THEN 1 ELSE 0 END), 0) FROM games_sessionmove WHERE session_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*keys, session.pk])
        n, retried = cursor.fetchone()
    return n, retried


_SERVED_SQL = (
    "SELECT s.image_id, i.public_id, i.status FROM games_servedimage s"
    " JOIN annotate_image i ON i.id = s.image_id WHERE s.session_id = %s"
)


_PUBLIC_ID = Image._meta.get_field("public_id")


def _served(session: GameSession) -> Served:
    """The session's images: public id -> (image pk, status)."""
    with connection.cursor() as cursor:
        cursor.execute(_SERVED_SQL, [session.pk])
        rows = cursor.fetchall()
    return {str(_PUBLIC_ID.to_python(pid)): (pk, status) for pk, pid, status in rows}


def session_moves_apply(*, player_id: int, token: UUID, moves: Sequence[MoveInput]) -> SessionView:
    """Apply a batch of moves in order, store their labels once, and return the new view.

    A move whose key this session already applied gets its stored result (``duplicate``) and is
    not replayed; a move the engine refuses, or a judgement of an image no longer in play (e.g.
    withdrawn by its donor), is ``rejected`` with a message and changes nothing. Answers faster
    than the level's minimum are stored as uncounted labels (bot detection) and score nothing.
    """
    if not moves:
        raise ApplicationError("No moves.")
    if len(moves) > MAX_MOVES_PER_BATCH:
        raise ApplicationError(f"At most {MAX_MOVES_PER_BATCH} moves per batch.")
    keys = [m.key for m in moves]
    if len(set(keys)) != len(keys) or not all(0 < len(k) <= 64 for k in keys):
        raise ApplicationError("Each move needs its own key of 1 to 64 characters.")
    with transaction.atomic():
        session = _session_for_player(player_id, token, lock=True)
        # One query for the common case (no retried key): how many moves, and whether any of
        # this batch's keys is among them.
        n_moves, retried = _move_counts(session, keys)
        done = (
            {m.key: m for m in SessionMove.objects.filter(session=session, key__in=keys)}
            if retried
            else {}
        )
        state = match3.Match3State.from_dict(session.state)
        at_ms = now_ms()
        served = _served(session)
        class_ids = [c.pk for c in _class_rows(session.dataset)]
        # Locked now, not when the counters are added: its bot flag decides how labels count.
        stats = player_stats_locked(player_id)
        bot = stats.flagged_as_bot
        rng = np.random.default_rng([state.seed, state.step, 1])
        score_before = state.score
        results: list[MoveResult] = []
        new_moves: list[tuple[int, str, int, str, dict[str, Any]]] = []
        labels: list[LabelInput] = []
        tally = dict(labels=0, gold_answers=0, gold_correct=0, too_fast=0)
        seq = n_moves
        supplier = _Supplier(session, rng, served)
        for move in moves:
            if move.key in done:
                stored = done[move.key]
                results.append(
                    MoveResult(
                        move.key,
                        "duplicate",
                        stored.result.get("events", []),
                        stored.result.get("message", ""),
                    )
                )
                continue
            try:
                image_id = _tile_image(state, move.tile) if move.kind == "judge" else None
                if image_id is not None and served.get(image_id, (0, ""))[1] != Image.Status.ACTIVE:
                    status = served.get(image_id, (0, "unknown"))[1]
                    reason = (
                        "was withdrawn by its donor"
                        if status == Image.Status.WITHDRAWN
                        else "is no longer in play"
                    )
                    raise InvalidMove(f"This image {reason}; its label cannot be accepted.")
                engine_move = _engine_move(move, state, session, at_ms)
                state, events = match3.apply(state, engine_move)
            except InvalidMove as exc:
                results.append(MoveResult(move.key, "rejected", message=str(exc)))
                new_moves.append((session.pk, move.key, seq, "rejected", {"message": str(exc)}))
                seq += 1
                continue
            state, events = supplier.feed(state, events)
            for event in events:
                if isinstance(event, match3.Label):
                    labels.append(
                        LabelInput(
                            move.key,
                            served[event.image_id][0],
                            class_ids[event.class_index],
                            event.response_ms,
                            counted=not bot,
                        )
                    )
                    tally["labels"] += 1
                    tally["gold_answers"] += int(event.gold)
                elif isinstance(event, match3.GoldCorrect):
                    tally["gold_correct"] += 1
                elif isinstance(event, match3.TooFast):
                    assert move.class_index is not None  # noqa: S101 - only judgements are too fast
                    labels.append(
                        LabelInput(
                            move.key,
                            served[event.image_id][0],
                            class_ids[move.class_index],
                            event.response_ms,
                            counted=False,
                        )
                    )
                    tally["too_fast"] += 1
            client = match3.client_events(events)
            results.append(MoveResult(move.key, "applied", client))
            new_moves.append((session.pk, move.key, seq, "applied", {"events": client}))
            seq += 1
        labels_submit(
            player_id=player_id,
            labels=labels,
            source=Annotation.Source.MATCH_THREE,
            allowed_image_ids=frozenset(pk for pk, _ in served.values()),
        )
        db.insert_rows(SessionMove, ("session_id", "key", "seq", "outcome", "result"), new_moves)
        ended = (
            state.status != GameSession.Status.PLAYING
            and session.status == GameSession.Status.PLAYING
        )
        summary = match3.level_summary(state)
        badges = stats_record_moves(
            player_id=player_id,
            dataset_id=session.dataset_id,
            stats=stats,
            tally=MoveTally(
                **tally,
                points=state.score - score_before,
                best_streak=state.max_streak,
                best_cascade=state.max_cascade,
                level_won=ended and state.status == "won",
                level_perfect=ended and summary["perfect"],
                level_id=state.config.level_id,
            ),
        )
        session.state = state.to_dict()
        session.score = state.score
        session.status = state.status
        if ended:
            session.ended_at = timezone.now()
        _mark_shown(session, state, now_ms())
        db.update_fields(
            session, ("state", "score", "status", "ended_at", "shown_at", "updated_at")
        )
    return SessionView(
        token=session.token,
        view=session_public_view(session, state),
        results=results,
        badges=badges,
    )
