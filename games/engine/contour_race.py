"""Contour race: the room state machine, its scoring rule and skill-based matchmaking.

A room holds 2 to 8 participants: players and *ghosts* (replays of earlier players' contours with
their recorded timings, used when nobody else is online). Phases::

    lobby --StartRound--> countdown --(countdown_ms)--> drawing --(all done | deadline)--> results
      ^                                                                                    |
      +-------------------------------------- NextRound -----------------------------------+
    (any phase) --every player left--> closed

The server is the only clock: every move carries ``at``, a server timestamp in milliseconds, and the
engine never reads a clock. Moves that arrive with an older timestamp than the last one are treated as
happening at the last one. Time-driven changes (countdown over, ghost progress, deadline) happen at the
start of every move, so a :class:`Tick` is only needed to make them happen when no player acts; the
service schedules one for :func:`next_wakeup`.

Visibility: every participant sees everyone's presence and progress (``waiting`` / ``drawing`` /
``submitted`` / ``timed_out``) but only their own contour until the round is over; then all contours
are revealed with the scores. Ghosts are shown by their ghost id only, never by the real player.

Nobody stalls a room: the drawing phase ends as soon as every *connected* player has submitted (players
who left or dropped are not waited for), or at the deadline. When no player is connected the room
waits for the deadline, so a dropped connection can still resume the round (:class:`Reconnect` and
:func:`view_for`).

Scoring (:func:`race_score`) needs the Dice of each contour, which the service computes (gold where the
image has gold, else leave-one-out STAPLE consensus) when it receives :class:`RoundEnded`, and passes
back with :class:`Scores`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from games.engine.common import Event, InvalidMove
from games.engine.contours import ContourLimits, ContourRejected, validate_contour

logger = logging.getLogger(__name__)

Point = tuple[float, float]

LOBBY, COUNTDOWN, DRAWING, RESULTS, CLOSED = "lobby", "countdown", "drawing", "results", "closed"
WAITING, DRAWING_PROGRESS, SUBMITTED, TIMED_OUT = "waiting", "drawing", "submitted", "timed_out"


# ---------------------------------------------------------------------------------------- scoring
ACCURACY_POINTS = 1000
SPEED_BONUS = 0.1


def race_score(
    dice: float,
    elapsed_ms: int,
    draw_ms: int,
    *,
    accuracy_points: int = ACCURACY_POINTS,
    speed_bonus: float = SPEED_BONUS,
) -> int:
    """Score of one contour: accuracy first, speed as a bounded bonus on top of it.

    ``score = round(accuracy_points * dice * (1 + speed_bonus * speed))`` with
    ``speed = clip(1 - elapsed_ms / draw_ms, 0, 1)``.

    The bound: the speed bonus is at most ``speed_bonus`` (10 %) of the accuracy points the contour
    earned, so it is never more than 100 points, and a contour with Dice 0 scores 0 however fast it
    was. Consequently a contour whose Dice is at least ``(1 + speed_bonus)`` times another's never
    scores less, whatever the two timings (property-tested): speed can break near-ties in accuracy,
    never outweigh a real accuracy difference.

    Parameters
    ----------
    dice : float
        Dice in ``[0, 1]`` against gold or leave-one-out consensus.
    elapsed_ms : int
        Time from the start of drawing to the submission.
    draw_ms : int
        Length of the drawing phase.
    """
    if not 0.0 <= dice <= 1.0:
        raise ValueError("dice must be in [0, 1]")
    if draw_ms <= 0:
        raise ValueError("draw_ms must be positive")
    speed = min(1.0, max(0.0, 1.0 - elapsed_ms / draw_ms))
    return round(accuracy_points * dice * (1.0 + speed_bonus * speed))


# ----------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RoomConfig:
    """Room rules. Times in milliseconds.

    ``ghost_wait_ms``: a lone player who is ready waits this long for company before the engine asks
    the service for ghosts; ``ghost_fill_to`` is the room size the ghosts then bring it up to.
    """

    min_players: int = 2
    max_players: int = 8
    countdown_ms: int = 3_000
    draw_ms: int = 60_000
    allow_ghosts: bool = True
    ghost_wait_ms: int = 10_000
    ghost_fill_to: int = 4
    speed_bonus: float = SPEED_BONUS

    def __post_init__(self) -> None:
        if not 2 <= self.min_players <= self.max_players <= 8:
            raise ValueError("need 2 <= min_players <= max_players <= 8")
        if self.countdown_ms < 0 or self.draw_ms <= 0:
            raise ValueError("countdown_ms must be >= 0 and draw_ms > 0")


@dataclass(frozen=True)
class RoundSpec:
    """The image of a round, chosen by the service."""

    image_id: str
    width: int
    height: int
    structure: str
    reference_image_id: str | None = None


@dataclass(frozen=True)
class GhostReplay:
    """An earlier player's contour replayed with its timing.

    ``source_id`` (the stored annotation) stays service-side; players only see ``ghost_id``.
    Offsets are measured from the start of the drawing phase.
    """

    ghost_id: str
    source_id: str
    contour: tuple[Point, ...]
    start_offset_ms: int
    submit_offset_ms: int
    skill: float = 0.0


@dataclass(frozen=True)
class Participant:
    player_id: str
    is_ghost: bool = False
    skill: float = 0.0
    connected: bool = True
    left: bool = False
    ready: bool = False
    progress: str = WAITING
    started_ms: int | None = None
    elapsed_ms: int | None = None
    contour: tuple[Point, ...] | None = None
    dice: float | None = None
    score: int | None = None

    @property
    def active(self) -> bool:
        """A human who is here now (connected and not gone)."""
        return not self.is_ghost and self.connected and not self.left

    @property
    def done(self) -> bool:
        return self.progress in (SUBMITTED, TIMED_OUT)


@dataclass(frozen=True)
class RoomState:
    """Complete, immutable state of one room."""

    room_id: str
    config: RoomConfig = field(default_factory=RoomConfig)
    phase: str = LOBBY
    players: tuple[Participant, ...] = ()
    ghosts: tuple[GhostReplay, ...] = ()
    round_no: int = 0
    round: RoundSpec | None = None
    now: int = 0
    countdown_ends_at: int | None = None
    drawing_started_at: int | None = None
    deadline_at: int | None = None
    all_ready_since: int | None = None
    start_requested: bool = False
    scored: bool = False
    reference_kind: str = ""
    # Bumped by every applied move: orders the views of one room (broadcasts from several server
    # processes or threads may arrive out of order; a receiver drops any older than its last).
    seq: int = 0

    def player(self, player_id: str) -> Participant | None:
        for p in self.players:
            if p.player_id == player_id:
                return p
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (contains hidden contours: persist server-side only)."""
        return {
            "room_id": self.room_id,
            "config": vars(self.config).copy(),
            "phase": self.phase,
            "players": [_participant_to_dict(p) for p in self.players],
            "ghosts": [{**vars(g), "contour": [list(pt) for pt in g.contour]} for g in self.ghosts],
            "round_no": self.round_no,
            "round": None if self.round is None else vars(self.round).copy(),
            "now": self.now,
            "countdown_ends_at": self.countdown_ends_at,
            "drawing_started_at": self.drawing_started_at,
            "deadline_at": self.deadline_at,
            "all_ready_since": self.all_ready_since,
            "start_requested": self.start_requested,
            "scored": self.scored,
            "reference_kind": self.reference_kind,
            "seq": self.seq,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoomState:
        """Inverse of :meth:`to_dict`."""
        return cls(
            room_id=d["room_id"],
            config=RoomConfig(**d["config"]),
            phase=d["phase"],
            players=tuple(_participant_from_dict(p) for p in d["players"]),
            ghosts=tuple(
                GhostReplay(**{**g, "contour": tuple((x, y) for x, y in g["contour"])})
                for g in d["ghosts"]
            ),
            round_no=d["round_no"],
            round=None if d["round"] is None else RoundSpec(**d["round"]),
            now=d["now"],
            countdown_ends_at=d["countdown_ends_at"],
            drawing_started_at=d["drawing_started_at"],
            deadline_at=d["deadline_at"],
            all_ready_since=d["all_ready_since"],
            start_requested=d["start_requested"],
            scored=d["scored"],
            reference_kind=d["reference_kind"],
            seq=d.get("seq", 0),
        )


def _participant_to_dict(p: Participant) -> dict[str, Any]:
    d = vars(p).copy()
    d["contour"] = None if p.contour is None else [list(pt) for pt in p.contour]
    return d


def _participant_from_dict(d: dict[str, Any]) -> Participant:
    contour = None if d["contour"] is None else tuple((x, y) for x, y in d["contour"])
    return Participant(**{**d, "contour": contour})


def new_room(room_id: str, config: RoomConfig | None = None, *, at: int = 0) -> RoomState:
    """An empty room in the lobby."""
    return RoomState(room_id=room_id, config=config or RoomConfig(), now=at)


# ------------------------------------------------------------------------------------------ moves
@dataclass(frozen=True)
class Join:
    player_id: str
    at: int
    skill: float = 0.0


@dataclass(frozen=True)
class Leave:
    player_id: str
    at: int


@dataclass(frozen=True)
class Disconnect:
    player_id: str
    at: int


@dataclass(frozen=True)
class Reconnect:
    player_id: str
    at: int


@dataclass(frozen=True)
class SetReady:
    player_id: str
    at: int
    ready: bool = True


@dataclass(frozen=True)
class StartRound:
    """The service's answer to :class:`ReadyToStart`: the image, and ghosts when it has them."""

    at: int
    round: RoundSpec
    ghosts: tuple[GhostReplay, ...] = ()


@dataclass(frozen=True)
class ReportProgress:
    """The player started drawing (sent once, on the first stroke)."""

    player_id: str
    at: int


@dataclass(frozen=True)
class Submit:
    """A contour in image pixel coordinates; ``closed`` as in :func:`validate_contour`."""

    player_id: str
    at: int
    points: tuple[Point, ...]
    closed: bool = False


@dataclass(frozen=True)
class Tick:
    at: int


@dataclass(frozen=True)
class Scores:
    """Dice per participant computed by the service; ``reference`` is ``gold`` or ``consensus``."""

    at: int
    dice: tuple[tuple[str, float], ...]
    reference: str


@dataclass(frozen=True)
class NextRound:
    """A player asks for the next round (the room moves on when every racer here has); without
    ``player_id`` the room moves on at once (the sweep, tests)."""

    at: int
    player_id: str = ""


Move = (
    Join
    | Leave
    | Disconnect
    | Reconnect
    | SetReady
    | StartRound
    | ReportProgress
    | Submit
    | Tick
    | Scores
    | NextRound
)


# ----------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class PlayerJoined(Event):
    kind: ClassVar[str] = "player_joined"
    player_id: str
    is_ghost: bool


@dataclass(frozen=True)
class PlayerLeft(Event):
    kind: ClassVar[str] = "player_left"
    player_id: str


@dataclass(frozen=True)
class Presence(Event):
    kind: ClassVar[str] = "presence"
    player_id: str
    connected: bool


@dataclass(frozen=True)
class ReadyChanged(Event):
    kind: ClassVar[str] = "ready"
    player_id: str
    ready: bool


@dataclass(frozen=True)
class ReadyToStart(Event):
    """Service-side: pick an image (and ``ghosts_wanted`` ghosts) and apply :class:`StartRound`."""

    kind: ClassVar[str] = "ready_to_start"
    players: int
    ghosts_wanted: int


@dataclass(frozen=True)
class PhaseChanged(Event):
    kind: ClassVar[str] = "phase"
    phase: str
    at: int
    ends_at: int | None


@dataclass(frozen=True)
class ProgressChanged(Event):
    kind: ClassVar[str] = "progress"
    player_id: str
    progress: str


@dataclass(frozen=True)
class ContourSubmitted(Event):
    """Service-side: store the player's contour as an annotation (idempotent on room, round, player).

    ``started_ms`` and ``elapsed_ms`` (from the start of drawing to the first stroke and to the
    submission) are what a later :class:`GhostReplay` of this contour replays.
    """

    kind: ClassVar[str] = "contour_submitted"
    player_id: str
    round_no: int
    image_id: str
    started_ms: int
    elapsed_ms: int
    points: tuple[Point, ...]
    repairs: tuple[str, ...]


@dataclass(frozen=True)
class SubmissionRejected(Event):
    """To the submitting player only: why the contour was not accepted (they may resubmit)."""

    kind: ClassVar[str] = "submission_rejected"
    player_id: str
    code: str
    message: str


@dataclass(frozen=True)
class RoundEnded(Event):
    """Service-side: compute Dice for each submission and apply :class:`Scores`.

    ``submissions``: ``(participant id, is_ghost, elapsed_ms)`` per contour; contours are in the state.
    """

    kind: ClassVar[str] = "round_ended"
    round_no: int
    image_id: str
    submissions: tuple[tuple[str, bool, int], ...]


@dataclass(frozen=True)
class Scored(Event):
    kind: ClassVar[str] = "scored"
    ranking: tuple[tuple[str, int], ...]  # (participant id, score), best first


@dataclass(frozen=True)
class RoomClosed(Event):
    kind: ClassVar[str] = "room_closed"


#: Events the service consumes and does not broadcast.
SERVICE_EVENT_KINDS = frozenset({"ready_to_start", "contour_submitted", "round_ended"})
#: Events meant only for the player they name.
PRIVATE_EVENT_KINDS = frozenset({"submission_rejected"})


def broadcast_events(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The events every participant may receive, as dicts."""
    hidden = SERVICE_EVENT_KINDS | PRIVATE_EVENT_KINDS
    return [e.to_dict() for e in events if e.kind not in hidden]


# ------------------------------------------------------------------------------------------ logic
def _set_player(state: RoomState, player_id: str, **changes: Any) -> RoomState:
    players = tuple(replace(p, **changes) if p.player_id == player_id else p for p in state.players)
    return replace(state, players=players)


def _humans(state: RoomState) -> list[Participant]:
    return [p for p in state.players if not p.is_ghost and not p.left]


def _require(state: RoomState, player_id: str) -> Participant:
    p = state.player(player_id)
    if p is None or p.is_ghost:
        raise InvalidMove(f"{player_id} is not in room {state.room_id}")
    return p


def _lobby_check(state: RoomState, at: int) -> tuple[RoomState, list[Event]]:
    """Track readiness in the lobby and ask the service to start when the room is ready."""
    if state.phase != LOBBY:
        return state, []
    active = [p for p in state.players if p.active]
    all_ready = bool(active) and all(p.ready for p in active)
    if not all_ready:
        return replace(state, all_ready_since=None, start_requested=False), []
    since = state.all_ready_since if state.all_ready_since is not None else at
    state = replace(state, all_ready_since=since)
    if state.start_requested:
        return state, []
    cfg = state.config
    enough = len(active) >= cfg.min_players
    lonely = cfg.allow_ghosts and at - since >= cfg.ghost_wait_ms
    if not (enough or lonely):
        return state, []
    wanted = 0 if enough else max(cfg.min_players, cfg.ghost_fill_to) - len(active)
    wanted = min(wanted, cfg.max_players - len(active))
    return replace(state, start_requested=True), [ReadyToStart(len(active), wanted)]


def _ghost_schedule(state: RoomState) -> list[tuple[int, str, str]]:
    """Pending ghost transitions ``(time, ghost_id, new progress)``, in time order."""
    if state.phase != DRAWING or state.drawing_started_at is None:
        return []
    t0 = state.drawing_started_at
    out: list[tuple[int, str, str]] = []
    for g in state.ghosts:
        p = state.player(g.ghost_id)
        if p is None or p.done:
            continue
        if p.progress == WAITING:
            out.append((t0 + g.start_offset_ms, g.ghost_id, DRAWING_PROGRESS))
        if g.submit_offset_ms <= state.config.draw_ms:
            out.append((t0 + g.submit_offset_ms, g.ghost_id, SUBMITTED))
    return sorted(out, key=lambda item: (item[0], item[2] == SUBMITTED, item[1]))


def _ghost_step(state: RoomState, ghost_id: str, progress: str) -> RoomState:
    current = state.player(ghost_id)
    if current is None or current.done:
        return state
    if progress == SUBMITTED:
        g = next(g for g in state.ghosts if g.ghost_id == ghost_id)
        return _set_player(
            state,
            ghost_id,
            progress=SUBMITTED,
            started_ms=g.start_offset_ms,
            elapsed_ms=g.submit_offset_ms,
            contour=g.contour,
        )
    return _set_player(state, ghost_id, progress=progress)


def _end_round(state: RoomState, at: int) -> tuple[RoomState, list[Event]]:
    """Close the drawing phase: ghosts finish at their recorded times, the rest time out."""
    events: list[Event] = []
    for _, ghost_id, progress in _ghost_schedule(state):
        state = _ghost_step(state, ghost_id, progress)
        events.append(ProgressChanged(ghost_id, progress))
    for p in state.players:
        if not p.done:
            state = _set_player(state, p.player_id, progress=TIMED_OUT)
            events.append(ProgressChanged(p.player_id, TIMED_OUT))
    assert state.round is not None  # noqa: S101 - only reachable after StartRound
    submissions = tuple(
        (p.player_id, p.is_ghost, p.elapsed_ms)
        for p in state.players
        if p.progress == SUBMITTED and p.elapsed_ms is not None
    )
    image_id = state.round.image_id
    # Readiness now means "ready for the next round", asked afresh of everyone.
    state = replace(
        state, phase=RESULTS, players=tuple(replace(p, ready=False) for p in state.players)
    )
    events.append(PhaseChanged(RESULTS, at, None))
    events.append(RoundEnded(state.round_no, image_id, submissions))
    return state, events


def _maybe_end_early(state: RoomState, at: int) -> tuple[RoomState, list[Event]]:
    if state.phase != DRAWING:
        return state, []
    active = [p for p in state.players if p.active]
    if active and all(p.done for p in active):
        return _end_round(state, at)
    return state, []


def _advance(state: RoomState, at: int) -> tuple[RoomState, list[Event]]:
    """Apply every time-driven change up to ``at``, in time order."""
    at = max(at, state.now)
    events: list[Event] = []
    if state.phase == COUNTDOWN and state.countdown_ends_at is not None:
        if at >= state.countdown_ends_at:
            start = state.countdown_ends_at
            deadline = start + state.config.draw_ms
            state = replace(state, phase=DRAWING, drawing_started_at=start, deadline_at=deadline)
            events.append(PhaseChanged(DRAWING, start, deadline))
    if state.phase == DRAWING and state.deadline_at is not None:
        deadline = state.deadline_at
        for when, ghost_id, progress in _ghost_schedule(state):
            if when > at or when > deadline:
                continue
            state = _ghost_step(state, ghost_id, progress)
            events.append(ProgressChanged(ghost_id, progress))
        if at >= deadline:
            state, more = _end_round(state, deadline)
            events += more
    if state.phase == LOBBY:
        state, more = _lobby_check(state, at)
        events += more
    return replace(state, now=at), events


def next_wakeup(state: RoomState) -> int | None:
    """When the service should :class:`Tick` the room next (None: nothing is scheduled)."""
    if state.phase == COUNTDOWN:
        return state.countdown_ends_at
    if state.phase == DRAWING:
        times = [t for t, _, _ in _ghost_schedule(state) if t > state.now]
        if state.deadline_at is not None:
            times.append(state.deadline_at)
        return min(times) if times else None
    if state.phase == LOBBY and state.all_ready_since is not None and not state.start_requested:
        if state.config.allow_ghosts:
            return state.all_ready_since + state.config.ghost_wait_ms
    return None


def _close_if_empty(state: RoomState, at: int) -> tuple[RoomState, list[Event]]:
    if state.phase != CLOSED and not _humans(state):
        return replace(state, phase=CLOSED), [PhaseChanged(CLOSED, at, None), RoomClosed()]
    return state, []


def _join(state: RoomState, move: Join) -> tuple[RoomState, list[Event]]:
    existing = state.player(move.player_id)
    if existing is not None and not existing.is_ghost:
        return _reconnect(state, move.player_id, move.at)
    if state.phase != LOBBY:
        raise InvalidMove("a round is in progress; join the next one")
    if len(state.players) >= state.config.max_players:
        raise InvalidMove("the room is full")
    state = replace(state, players=(*state.players, Participant(move.player_id, skill=move.skill)))
    events: list[Event] = [PlayerJoined(move.player_id, False)]
    state, more = _lobby_check(state, move.at)
    return state, events + more


def _reconnect(state: RoomState, player_id: str, at: int) -> tuple[RoomState, list[Event]]:
    p = _require(state, player_id)
    if p.connected and not p.left:
        return state, []
    state = _set_player(state, player_id, connected=True, left=False)
    state, more = _lobby_check(state, at)
    return state, [Presence(player_id, True), *more]


def _leave(state: RoomState, move: Leave) -> tuple[RoomState, list[Event]]:
    _require(state, move.player_id)
    if state.phase == LOBBY:
        players = tuple(p for p in state.players if p.player_id != move.player_id)
        state = replace(state, players=players)
    else:
        # keep the seat record: a submitted contour still counts in the results
        state = _set_player(state, move.player_id, left=True, connected=False)
    events: list[Event] = [PlayerLeft(move.player_id)]
    state, more = _close_if_empty(state, move.at)
    events += more
    state, more = _maybe_end_early(state, move.at)
    events += more
    state, more = _lobby_check(state, move.at)
    return state, events + more


def _disconnect(state: RoomState, move: Disconnect) -> tuple[RoomState, list[Event]]:
    p = _require(state, move.player_id)
    if not p.connected:
        return state, []
    state = _set_player(state, move.player_id, connected=False)
    events: list[Event] = [Presence(move.player_id, False)]
    state, more = _maybe_end_early(state, move.at)
    events += more
    state, more = _lobby_check(state, move.at)
    return state, events + more


def _set_ready(state: RoomState, move: SetReady) -> tuple[RoomState, list[Event]]:
    _require(state, move.player_id)
    if state.phase != LOBBY:
        raise InvalidMove("readiness only counts in the lobby")
    state = _set_player(state, move.player_id, ready=move.ready)
    state, more = _lobby_check(state, move.at)
    return state, [ReadyChanged(move.player_id, move.ready), *more]


def _start_round(state: RoomState, move: StartRound) -> tuple[RoomState, list[Event]]:
    if state.phase != LOBBY:
        raise InvalidMove("a round can only start from the lobby")
    active = [p for p in state.players if p.active]
    if not active or not all(p.ready for p in active):
        raise InvalidMove("not every player is ready")
    room_left = state.config.max_players - len(state.players)
    ghosts = move.ghosts[: max(0, room_left)]
    ids = [g.ghost_id for g in ghosts]
    if len(set(ids)) != len(ids) or any(state.player(i) is not None for i in ids):
        raise InvalidMove("ghost ids must be unique in the room")
    if len(active) + len(ghosts) < state.config.min_players:
        raise InvalidMove("not enough players or ghosts to start")
    ghost_players = tuple(Participant(g.ghost_id, is_ghost=True, skill=g.skill) for g in ghosts)
    players = tuple(p for p in state.players if not p.left) + ghost_players
    ends = move.at + state.config.countdown_ms
    state = replace(
        state,
        phase=COUNTDOWN,
        players=players,
        ghosts=ghosts,
        round_no=state.round_no + 1,
        round=move.round,
        countdown_ends_at=ends,
        drawing_started_at=None,
        deadline_at=None,
        scored=False,
        reference_kind="",
    )
    events: list[Event] = [PlayerJoined(g.ghost_id, True) for g in ghosts]
    events.append(PhaseChanged(COUNTDOWN, move.at, ends))
    return state, events


def _report_progress(state: RoomState, move: ReportProgress) -> tuple[RoomState, list[Event]]:
    p = _require(state, move.player_id)
    if state.phase != DRAWING or p.progress != WAITING:
        return state, []
    assert state.drawing_started_at is not None  # noqa: S101 - set when drawing starts
    started = move.at - state.drawing_started_at
    state = _set_player(state, move.player_id, progress=DRAWING_PROGRESS, started_ms=started)
    return state, [ProgressChanged(move.player_id, DRAWING_PROGRESS)]


def _submit(
    state: RoomState, move: Submit, limits: ContourLimits | None
) -> tuple[RoomState, list[Event]]:
    p = _require(state, move.player_id)
    if state.phase != DRAWING:
        code = "round_over" if state.phase in (RESULTS, CLOSED) else "not_drawing"
        return state, [SubmissionRejected(move.player_id, code, f"The room is in {state.phase}.")]
    if p.done:
        return state, [
            SubmissionRejected(move.player_id, "already_submitted", "You already submitted.")
        ]
    assert state.round is not None and state.drawing_started_at is not None  # noqa: S101
    try:
        clean = validate_contour(
            move.points,
            width=state.round.width,
            height=state.round.height,
            closed=move.closed,
            limits=limits,
        )
    except ContourRejected as error:
        return state, [SubmissionRejected(move.player_id, error.code, str(error))]
    elapsed = move.at - state.drawing_started_at
    started = p.started_ms if p.started_ms is not None else elapsed
    image_id = state.round.image_id
    state = _set_player(
        state,
        move.player_id,
        progress=SUBMITTED,
        started_ms=started,
        elapsed_ms=elapsed,
        contour=clean.points,
    )
    events: list[Event] = [
        ContourSubmitted(
            move.player_id, state.round_no, image_id, started, elapsed, clean.points, clean.repairs
        ),
        ProgressChanged(move.player_id, SUBMITTED),
    ]
    state, more = _maybe_end_early(state, move.at)
    return state, events + more


def _scores(state: RoomState, move: Scores) -> tuple[RoomState, list[Event]]:
    if state.phase != RESULTS:
        raise InvalidMove("scores belong to the results phase")
    if move.reference not in ("gold", "consensus"):
        raise InvalidMove("reference must be gold or consensus")
    dice = dict(move.dice)
    for player_id in dice:
        if state.player(player_id) is None:
            raise InvalidMove(f"unknown participant {player_id}")
    players = []
    for p in state.players:
        if p.progress == SUBMITTED and p.player_id in dice and p.elapsed_ms is not None:
            d = float(dice[p.player_id])
            score = race_score(
                d, p.elapsed_ms, state.config.draw_ms, speed_bonus=state.config.speed_bonus
            )
            players.append(replace(p, dice=d, score=score))
        else:
            players.append(replace(p, dice=None, score=0))
    state = replace(state, players=tuple(players), scored=True, reference_kind=move.reference)
    return state, [Scored(_ranking(state))]


def _ranking(state: RoomState) -> tuple[tuple[str, int], ...]:
    def key(p: Participant) -> tuple[int, int, str]:
        elapsed = p.elapsed_ms if p.elapsed_ms is not None else math.inf
        return (-(p.score or 0), int(min(elapsed, 2**62)), p.player_id)

    return tuple((p.player_id, p.score or 0) for p in sorted(state.players, key=key))


def _next_round(state: RoomState, move: NextRound) -> tuple[RoomState, list[Event]]:
    if state.phase != RESULTS:
        raise InvalidMove("the next round starts after the results")
    asked: list[Event] = []
    if move.player_id:
        # Nobody is pulled away from their results: the room waits for every racer here.
        _require(state, move.player_id)
        state = _set_player(state, move.player_id, ready=True)
        asked.append(ReadyChanged(move.player_id, True))
        if not all(p.ready for p in state.players if p.active):
            return state, asked
    players = tuple(
        Participant(p.player_id, skill=p.skill, connected=p.connected, ready=p.ready)
        for p in state.players
        if not p.is_ghost and not p.left
    )
    state = replace(
        state,
        phase=LOBBY,
        players=players,
        ghosts=(),
        round=None,
        countdown_ends_at=None,
        drawing_started_at=None,
        deadline_at=None,
        all_ready_since=None,
        start_requested=False,
        scored=False,
        reference_kind="",
    )
    state, more = _lobby_check(state, move.at)
    return state, [*asked, PhaseChanged(LOBBY, move.at, None), *more]


def apply(
    state: RoomState, move: Move, *, limits: ContourLimits | None = None
) -> tuple[RoomState, list[Event]]:
    """Apply one move at its server timestamp ``move.at``.

    Time-driven changes up to ``move.at`` happen first (their events come first). Raises
    :class:`InvalidMove` for a move that does not fit (unknown player, wrong phase); the state is then
    unchanged. A contour that fails validation is not an error: it yields
    :class:`SubmissionRejected` for that player, who may submit again.

    The room engine uses no randomness; ghosts are chosen by the service.
    """
    if state.phase == CLOSED:
        raise InvalidMove("the room is closed")
    state, events = _advance(replace(state, seq=state.seq + 1), move.at)
    at = state.now
    if isinstance(move, Tick):
        return state, events
    handlers: dict[type, Any] = {
        Join: _join,
        Leave: _leave,
        Disconnect: _disconnect,
        Reconnect: lambda s, m: _reconnect(s, m.player_id, at),
        SetReady: _set_ready,
        StartRound: _start_round,
        ReportProgress: _report_progress,
        Scores: _scores,
        NextRound: _next_round,
    }
    if isinstance(move, Submit):
        state, more = _submit(state, replace(move, at=at), limits)
    elif type(move) in handlers:
        state, more = handlers[type(move)](state, replace(move, at=at))
    else:
        raise InvalidMove(f"unknown move {move!r}")
    return state, events + more


# ------------------------------------------------------------------------------------------- views
def view_for(state: RoomState, player_id: str | None, *, now: int | None = None) -> dict[str, Any]:
    """What ``player_id`` may see: presence and progress of all, their own contour, and everyone's
    contours and scores only once the round is over. Use it after a reconnect to resume.

    ``player_id=None`` is the public view that every participant may receive (a broadcast): no
    contour at all before the results. ``now`` (server time, ms) is echoed so the client can align
    its countdown with the server.
    """
    if player_id is not None:
        me = state.player(player_id)
        if me is None or me.is_ghost:
            raise InvalidMove(f"{player_id} is not in room {state.room_id}")
    revealed = state.phase == RESULTS
    round_info: dict[str, Any] | None = None
    if state.round is not None:
        round_info = {"structure": state.round.structure, "round_no": state.round_no}
        if state.phase in (DRAWING, RESULTS):
            round_info.update(
                image_id=state.round.image_id,
                width=state.round.width,
                height=state.round.height,
                reference_image_id=state.round.reference_image_id,
            )
    players = []
    for p in state.players:
        entry: dict[str, Any] = {
            "player_id": p.player_id,
            "is_ghost": p.is_ghost,
            "you": p.player_id == player_id,
            "connected": p.is_ghost or (p.connected and not p.left),
            "left": p.left,
            "ready": p.ready,
            "progress": p.progress,
        }
        if revealed or p.player_id == player_id:
            entry["contour"] = None if p.contour is None else [list(pt) for pt in p.contour]
            entry["elapsed_ms"] = p.elapsed_ms
        if revealed and state.scored:
            entry["dice"] = p.dice
            entry["score"] = p.score
        players.append(entry)
    return {
        "room_id": state.room_id,
        "phase": state.phase,
        "server_time": state.now if now is None else now,
        "countdown_ends_at": state.countdown_ends_at,
        "drawing_started_at": state.drawing_started_at,
        "deadline_at": state.deadline_at,
        "round": round_info,
        "players": players,
        "scored": state.scored,
        "reference": state.reference_kind,
        "ranking": [list(r) for r in _ranking(state)] if revealed and state.scored else None,
        "seq": state.seq,
    }


# ------------------------------------------------------------------------------------ matchmaking
@dataclass(frozen=True)
class WaitingPlayer:
    player_id: str
    skill: float
    waiting_since: int  # server ms


@dataclass(frozen=True)
class Matches:
    rooms: tuple[tuple[str, ...], ...]
    waiting: tuple[str, ...]


def skill_tolerance(
    waited_ms: int, *, base: float = 0.1, widen_per_s: float = 0.01, cap: float = 1.0
) -> float:
    """How far apart in skill a player accepts room-mates: widens the longer they wait."""
    return min(cap, base + widen_per_s * max(0, waited_ms) / 1000.0)


def match_players(
    waiting: Sequence[WaitingPlayer],
    now: int,
    *,
    min_size: int = 2,
    max_size: int = 8,
    base_spread: float = 0.1,
    widen_per_s: float = 0.01,
    max_spread: float = 1.0,
) -> Matches:
    """Group waiting players into rooms of similar skill.

    Players are sorted by skill and rooms are filled greedily: a player joins the current room while it
    has fewer than ``max_size`` players and the room's skill spread stays within the widest
    :func:`skill_tolerance` among its members (one long-waiting player widens their own room). Then
    neighbouring rooms are balanced by moving players down while the rooms' sizes differ by two or more
    and the spread rule still holds (9 similar players make 5 + 4, not 8 + 1). Rooms smaller than
    ``min_size`` keep waiting (the service offers them ghosts).

    Guarantees (property-tested): every player is in at most one room; each room has ``min_size`` to
    ``max_size`` players; each room's spread is within the widest tolerance of its own members.

    Returns
    -------
    Matches
        ``rooms``: tuples of player ids, lowest skill first; ``waiting``: ids left unmatched.
    """
    if not 1 <= min_size <= max_size:
        raise ValueError("need 1 <= min_size <= max_size")
    ordered = sorted(waiting, key=lambda w: (w.skill, w.player_id))

    def tol(w: WaitingPlayer) -> float:
        return skill_tolerance(
            now - w.waiting_since, base=base_spread, widen_per_s=widen_per_s, cap=max_spread
        )

    def fits(room: list[WaitingPlayer]) -> bool:
        return room[-1].skill - room[0].skill <= max(tol(w) for w in room)

    groups: list[list[WaitingPlayer]] = []
    for w in ordered:
        if groups and len(groups[-1]) < max_size and fits([*groups[-1], w]):
            groups[-1].append(w)
        else:
            groups.append([w])
    for i in range(1, len(groups)):
        prev, cur = groups[i - 1], groups[i]
        while len(prev) - len(cur) >= 2 and fits([prev[-1], *cur]) and fits(prev[:-1]):
            cur.insert(0, prev.pop())

    rooms: list[tuple[str, ...]] = []
    left: list[str] = []
    for group in groups:
        ids = tuple(w.player_id for w in group)
        if len(group) >= min_size:
            rooms.append(ids)
        else:
            left.extend(ids)
    return Matches(rooms=tuple(rooms), waiting=tuple(left))
