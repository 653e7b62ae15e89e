"""Match-three classification game: a pure, deterministic state machine.

The board holds *image tiles*. Judging a tile (choosing its class) turns it into a *gem* of that
class; every class has a colour **and** a shape (:data:`CLASS_STYLES`) so colour is never the only
signal. Three or more gems of one class in a row or column clear, the tiles above fall, fresh image
tiles drop in from a queue that the service fills, and every further clear caused by the fall is a
cascade with a growing combo multiplier. Two adjacent gems may be swapped when the swap makes a line;
any other swap reverts and costs nothing.

Every accepted judgement is a label: the engine emits a :class:`Label` event (tile, image, class,
response time, whether it was gold, whether it completed a line and which classes *would* have
completed one) that the service stores as an ``Annotation``.

Honesty. A judgement that completes a line pays immediately, so a player is tempted to call a tile
whatever class finishes a line. Four things keep the honest answer the best one:

1. Gold tiles look exactly like the others (the public view never says which tiles are gold). A wrong
   gold answer shatters the tile (no line from it), costs a life and ``Scoring.gold_wrong`` points, and
   shows the right answer with reference images. :func:`games.engine.progression.gold_rate` keeps the
   gold share high until a player has proven themselves.
2. Non-gold labels earn *delayed points* once consensus settles
   (:func:`games.engine.progression.delayed_points`): ``Scoring.delayed_base`` times the consensus
   probability of the chosen class. The default ``delayed_base`` (40) exceeds the points of a
   three-gem line (30), so against a confident consensus a dishonest line-completing answer loses
   more later than it gains now (tested).
3. Answers faster than ``min_response_ms`` earn nothing, do not change the board, break the streak and
   emit :class:`TooFast` for bot detection; they never reveal a gold answer.
4. The :class:`Label` event records ``tempting_classes`` so consensus can measure and correct any
   residual bias towards line-completing classes.

Moves (:data:`Move`): :class:`Judge`, :class:`Swap`, :class:`SupplyTiles` (the service answering a
:class:`NeedTiles` request), :class:`Quit`. ``apply(state, move)`` returns ``(state, events)`` and
never mutates its input; the only randomness (reshuffling a dead board) comes from a generator
derived from the persisted state's seed and step (:func:`rng_for`), or from the ``rng`` passed to
``apply(state, move, rng)``. State round-trips through JSON with :meth:`Match3State.to_dict` / :meth:`Match3State.from_dict`.

Coordinates: ``board[row][col]``, row 0 at the top; gems fall towards higher rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol

import numpy as np

from games.engine.common import Event, InvalidMove

logger = logging.getLogger(__name__)

MIN_CLASSES = 2
MAX_CLASSES = 8

Pos = tuple[int, int]


# ----------------------------------------------------------------------------------------- styles
@dataclass(frozen=True)
class ClassStyle:
    """How a class's gems look: an Okabe-Ito colour, a distinct shape, and the keyboard key."""

    colour: str
    shape: str
    key: str


#: Okabe-Ito palette (distinguishable under the common colour-vision deficiencies), each paired
#: with its own shape so that shape alone identifies the class.
CLASS_STYLES: tuple[ClassStyle, ...] = (
    ClassStyle("#E69F00", "circle", "1"),
    ClassStyle("#56B4E9", "square", "2"),
    ClassStyle("#009E73", "triangle", "3"),
    ClassStyle("#F0E442", "diamond", "4"),
    ClassStyle("#0072B2", "star", "5"),
    ClassStyle("#D55E00", "hexagon", "6"),
    ClassStyle("#CC79A7", "cross", "7"),
    ClassStyle("#999999", "heart", "8"),
)


# ----------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class Goals:
    """Level goals; a zero goal is not required. The level is won when every non-zero goal is met."""

    clear_gems: int = 0
    score: int = 0
    judgements: int = 0


@dataclass(frozen=True)
class Scoring:
    """Point values. See the module docstring for why ``delayed_base > line_3``."""

    line_3: int = 30
    line_4: int = 60
    line_5: int = 100
    line_extra: int = 40  # per gem beyond five
    max_multiplier: int = 5
    gold_correct: int = 50
    gold_wrong: int = 100
    streak_every: int = 10
    streak_bonus: int = 50
    move_bonus: int = 20  # per unused move when the level is won
    delayed_base: int = 40

    def line_points(self, length: int) -> int:
        """Points for one straight line of ``length`` (>= 3) gems, before the combo multiplier."""
        if length < 3:
            return 0
        if length == 3:
            return self.line_3
        if length == 4:
            return self.line_4
        return self.line_5 + self.line_extra * (length - 5)


@dataclass(frozen=True)
class UnlockRule:
    """When a level opens; see :func:`games.engine.progression.unlocked_levels`."""

    min_gold_answers: int = 0
    min_accuracy: float = 0.0  # Wilson lower bound of gold accuracy (or Dawid-Skene skill)
    requires: tuple[str, ...] = ()  # level ids that must have been completed


@dataclass(frozen=True)
class LevelConfig:
    """A level of one dataset.

    Attributes
    ----------
    class_names : tuple of str
        The dataset's classes, 2 to 8; gem ``k`` is ``class_names[k]`` drawn with ``CLASS_STYLES[k]``.
    reference_images : tuple of tuple of str
        Per class, image ids of reference examples (shown in the tutorial and after a wrong gold).
    tutorial : bool
        A tutorial level: wrong gold answers cost neither lives nor points.
    queue_target, queue_low_water : int
        The engine asks for tiles (:class:`NeedTiles`) when fewer than ``queue_low_water`` are
        available beyond the board, enough to bring the queue back to ``queue_target``.
    """

    level_id: str
    class_names: tuple[str, ...]
    rows: int = 7
    cols: int = 7
    moves: int = 30
    lives: int = 3
    goals: Goals = field(default_factory=lambda: Goals(clear_gems=30))
    scoring: Scoring = field(default_factory=Scoring)
    min_response_ms: int = 400
    tutorial: bool = False
    reference_images: tuple[tuple[str, ...], ...] = ()
    unlock: UnlockRule = field(default_factory=UnlockRule)
    queue_target: int = 20
    queue_low_water: int = 10

    def __post_init__(self) -> None:
        if not MIN_CLASSES <= len(self.class_names) <= MAX_CLASSES:
            raise ValueError(f"a level needs {MIN_CLASSES} to {MAX_CLASSES} classes")
        if self.rows < 3 or self.cols < 3:
            raise ValueError("the board must be at least 3x3")
        if self.reference_images and len(self.reference_images) != len(self.class_names):
            raise ValueError("reference_images needs one tuple per class")
        if max(self.goals.clear_gems, self.goals.score, self.goals.judgements) <= 0:
            raise ValueError("a level needs at least one goal")
        if self.moves <= 0 or self.lives <= 0 or self.min_response_ms < 0:
            raise ValueError("moves and lives must be positive, min_response_ms non-negative")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def gold_penalty(self) -> bool:
        return not self.tutorial

    def to_dict(self) -> dict[str, Any]:
        return {
            "level_id": self.level_id,
            "class_names": list(self.class_names),
            "rows": self.rows,
            "cols": self.cols,
            "moves": self.moves,
            "lives": self.lives,
            "goals": vars(self.goals).copy(),
            "scoring": vars(self.scoring).copy(),
            "min_response_ms": self.min_response_ms,
            "tutorial": self.tutorial,
            "reference_images": [list(r) for r in self.reference_images],
            "unlock": {
                "min_gold_answers": self.unlock.min_gold_answers,
                "min_accuracy": self.unlock.min_accuracy,
                "requires": list(self.unlock.requires),
            },
            "queue_target": self.queue_target,
            "queue_low_water": self.queue_low_water,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LevelConfig:
        u = d["unlock"]
        return cls(
            level_id=d["level_id"],
            class_names=tuple(d["class_names"]),
            rows=d["rows"],
            cols=d["cols"],
            moves=d["moves"],
            lives=d["lives"],
            goals=Goals(**d["goals"]),
            scoring=Scoring(**d["scoring"]),
            min_response_ms=d["min_response_ms"],
            tutorial=d["tutorial"],
            reference_images=tuple(tuple(r) for r in d["reference_images"]),
            unlock=UnlockRule(u["min_gold_answers"], u["min_accuracy"], tuple(u["requires"])),
            queue_target=d["queue_target"],
            queue_low_water=d["queue_low_water"],
        )


def tutorial_level(
    dataset_level_id: str,
    class_names: Sequence[str],
    reference_images: Sequence[Sequence[str]],
    **overrides: Any,
) -> LevelConfig:
    """A gentle first level: small board, generous moves, reference images, no gold penalties."""
    params: dict[str, Any] = {
        "level_id": dataset_level_id,
        "class_names": tuple(class_names),
        "rows": 6,
        "cols": 6,
        "moves": 40,
        "lives": 3,
        "goals": Goals(clear_gems=9, judgements=12),
        "tutorial": True,
        "reference_images": tuple(tuple(r) for r in reference_images),
    }
    params.update(overrides)
    return LevelConfig(**params)


# ------------------------------------------------------------------------------------------ state
@dataclass(frozen=True)
class TileSpec:
    """A tile the service supplies: an image, and its gold class when the image has one (hidden)."""

    image_id: str
    gold_class: int | None = None


@dataclass(frozen=True)
class Tile:
    """A tile on the board: an unjudged image (``gem is None``) or a judged gem."""

    tile_id: int
    image_id: str
    gem: int | None = None
    gold_class: int | None = None  # never leaves the engine through public_view


Board = tuple[tuple[Tile | None, ...], ...]


@dataclass(frozen=True)
class Match3State:
    """Complete, immutable state of one level being played by one player."""

    config: LevelConfig
    board: Board
    queue: tuple[TileSpec, ...]
    seed: int
    lives: int
    next_tile_id: int = 0
    seen_images: frozenset[str] = frozenset()
    score: int = 0
    delayed_score: int = 0
    moves_used: int = 0
    streak: int = 0
    max_streak: int = 0
    max_cascade: int = 0
    gems_cleared: int = 0
    judgements: int = 0
    gold_correct: int = 0
    gold_wrong: int = 0
    too_fast: int = 0
    tiles_removed_unscored: int = 0  # removed by a board reset
    tiles_requested: int = 0
    source_exhausted: bool = False
    status: str = "playing"  # playing | won | lost
    end_reason: str = ""
    step: int = 0

    @property
    def moves_left(self) -> int:
        return max(0, self.config.moves - self.moves_used)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (includes gold answers: persist server-side only)."""
        return {
            "config": self.config.to_dict(),
            "board": [[_tile_to_dict(t) for t in row] for row in self.board],
            "queue": [[s.image_id, s.gold_class] for s in self.queue],
            "seed": self.seed,
            "lives": self.lives,
            "next_tile_id": self.next_tile_id,
            "seen_images": sorted(self.seen_images),
            "score": self.score,
            "delayed_score": self.delayed_score,
            "moves_used": self.moves_used,
            "streak": self.streak,
            "max_streak": self.max_streak,
            "max_cascade": self.max_cascade,
            "gems_cleared": self.gems_cleared,
            "judgements": self.judgements,
            "gold_correct": self.gold_correct,
            "gold_wrong": self.gold_wrong,
            "too_fast": self.too_fast,
            "tiles_removed_unscored": self.tiles_removed_unscored,
            "tiles_requested": self.tiles_requested,
            "source_exhausted": self.source_exhausted,
            "status": self.status,
            "end_reason": self.end_reason,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Match3State:
        """Inverse of :meth:`to_dict`."""
        simple = {
            k: d[k]
            for k in (
                "seed",
                "lives",
                "next_tile_id",
                "score",
                "delayed_score",
                "moves_used",
                "streak",
                "max_streak",
                "max_cascade",
                "gems_cleared",
                "judgements",
                "gold_correct",
                "gold_wrong",
                "too_fast",
                "tiles_removed_unscored",
                "tiles_requested",
                "source_exhausted",
                "status",
                "end_reason",
                "step",
            )
        }
        return cls(
            config=LevelConfig.from_dict(d["config"]),
            board=tuple(tuple(_tile_from_dict(t) for t in row) for row in d["board"]),
            queue=tuple(TileSpec(i, g) for i, g in d["queue"]),
            seen_images=frozenset(d["seen_images"]),
            **simple,
        )


_STATE_FIELDS = frozenset(f.name for f in fields(Match3State))


def _evolve(state: Match3State, **changes: Any) -> Match3State:
    """``dataclasses.replace`` for the state, without re-running ``__init__`` over its 24 fields
    (a fifth of a move's time went there). The state is immutable, so sharing the unchanged field
    values is safe; an unknown field name is still an error."""
    if not changes.keys() <= _STATE_FIELDS:
        raise TypeError(f"unknown state fields: {sorted(changes.keys() - _STATE_FIELDS)}")
    new = object.__new__(Match3State)
    new.__dict__.update(state.__dict__, **changes)
    return new


def _tile_to_dict(tile: Tile | None) -> list[Any] | None:
    if tile is None:
        return None
    return [tile.tile_id, tile.image_id, tile.gem, tile.gold_class]


def _tile(tile_id: int, image_id: str, gem: int | None, gold_class: int | None) -> Tile:
    """``Tile(...)`` without the frozen ``__init__``'s four ``object.__setattr__`` calls: a
    state read from JSON builds 49 of them on every move request."""
    tile = object.__new__(Tile)
    tile.__dict__.update(tile_id=tile_id, image_id=image_id, gem=gem, gold_class=gold_class)
    return tile


def _tile_from_dict(raw: list[Any] | None) -> Tile | None:
    if raw is None:
        return None
    return _tile(raw[0], raw[1], raw[2], raw[3])


# ------------------------------------------------------------------------------------------ moves
@dataclass(frozen=True)
class Judge:
    """The player says tile ``tile_id`` shows class ``class_index``, after ``response_ms`` ms.

    ``response_ms`` is measured by the service (server-side timestamps where it can) from the moment
    the tile was shown to the player.
    """

    tile_id: int
    class_index: int
    response_ms: int


@dataclass(frozen=True)
class Swap:
    """Swap two adjacent gems."""

    tile_a: int
    tile_b: int


@dataclass(frozen=True)
class SupplyTiles:
    """The service's tiles for the queue; ``exhausted`` says there are no more for this player."""

    tiles: tuple[TileSpec, ...]
    exhausted: bool = False


@dataclass(frozen=True)
class Quit:
    """The player abandons the level."""


Move = Judge | Swap | SupplyTiles | Quit


# ----------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Label(Event):
    """Service-side: store this judgement as an annotation."""

    kind: ClassVar[str] = "label"
    tile_id: int
    image_id: str
    class_index: int
    response_ms: int
    gold: bool
    completed_line: bool
    tempting_classes: tuple[int, ...]


@dataclass(frozen=True)
class TooFast(Event):
    """An answer faster than a human can judge: no label, no points (bot-detection input)."""

    kind: ClassVar[str] = "too_fast"
    tile_id: int
    image_id: str
    response_ms: int
    min_response_ms: int


@dataclass(frozen=True)
class GoldCorrect(Event):
    kind: ClassVar[str] = "gold_correct"
    tile_id: int
    class_index: int
    points: int


@dataclass(frozen=True)
class GoldWrong(Event):
    """A wrong answer on a gold tile: the right answer and reference examples for the player."""

    kind: ClassVar[str] = "gold_wrong"
    tile_id: int
    image_id: str
    chosen_class: int
    correct_class: int
    reference_image_ids: tuple[str, ...]
    points_lost: int
    lives_left: int


@dataclass(frozen=True)
class Cleared(Event):
    """One wave of clearing. ``cascade`` 1 is the direct result of the move, 2+ are combos."""

    kind: ClassVar[str] = "cleared"
    cascade: int
    multiplier: int
    tile_ids: tuple[int, ...]
    lines: tuple[tuple[int, int], ...]  # (class, length) per line
    points: int


@dataclass(frozen=True)
class Refilled(Event):
    kind: ClassVar[str] = "refilled"
    tile_ids: tuple[int, ...]


@dataclass(frozen=True)
class Swapped(Event):
    kind: ClassVar[str] = "swapped"
    tile_a: int
    tile_b: int


@dataclass(frozen=True)
class SwapReverted(Event):
    kind: ClassVar[str] = "swap_reverted"
    tile_a: int
    tile_b: int


@dataclass(frozen=True)
class StreakBonus(Event):
    kind: ClassVar[str] = "streak"
    streak: int
    points: int


@dataclass(frozen=True)
class NeedTiles(Event):
    """Service-side: supply about ``count`` more tiles with :class:`SupplyTiles`."""

    kind: ClassVar[str] = "need_tiles"
    count: int


@dataclass(frozen=True)
class DuplicateImageDropped(Event):
    """Service-side: a supplied image was already shown to this player and was dropped."""

    kind: ClassVar[str] = "duplicate_image_dropped"
    image_id: str


@dataclass(frozen=True)
class Reshuffled(Event):
    kind: ClassVar[str] = "reshuffled"


@dataclass(frozen=True)
class BoardReset(Event):
    """No reshuffle could make a move: the gems were removed without points."""

    kind: ClassVar[str] = "board_reset"
    tile_ids: tuple[int, ...]


@dataclass(frozen=True)
class LevelComplete(Event):
    kind: ClassVar[str] = "level_complete"
    score: int
    move_bonus: int


@dataclass(frozen=True)
class LevelFailed(Event):
    kind: ClassVar[str] = "level_failed"
    reason: str  # out_of_moves | out_of_lives | out_of_images | quit


@dataclass(frozen=True)
class DelayedPoints(Event):
    kind: ClassVar[str] = "delayed_points"
    image_id: str
    points: int


#: Events the service consumes itself and does not forward to the player's browser.
SERVICE_EVENT_KINDS = frozenset({"label", "need_tiles", "duplicate_image_dropped"})


def client_events(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The events to send to the player, as dicts (drops service-side events)."""
    return [e.to_dict() for e in events if e.kind not in SERVICE_EVENT_KINDS]


# ------------------------------------------------------------------------------------ board logic
def _positions(board: Board) -> Iterable[tuple[Pos, Tile | None]]:
    for r, row in enumerate(board):
        for c, tile in enumerate(row):
            yield (r, c), tile


def find_tile(board: Board, tile_id: int) -> Pos | None:
    """Position of ``tile_id`` on the board, or None."""
    for r, row in enumerate(board):
        for c, tile in enumerate(row):
            if tile is not None and tile.tile_id == tile_id:
                return r, c
    return None


def _gem(board: Board, r: int, c: int, swap: tuple[Pos, Pos] | None = None) -> int | None:
    """Gem class at ``(r, c)`` (None off-board, for holes and unjudged tiles), as if the two cells
    in ``swap`` were exchanged."""
    if swap is not None:
        if (r, c) == swap[0]:
            r, c = swap[1]
        elif (r, c) == swap[1]:
            r, c = swap[0]
    if 0 <= r < len(board) and 0 <= c < len(board[0]):
        tile = board[r][c]
        return tile.gem if tile is not None else None
    return None


def find_lines(board: Board) -> list[tuple[int, tuple[Pos, ...]]]:
    """All maximal straight runs of >= 3 gems of one class, as ``(class, positions)``.

    Horizontal runs come first (top to bottom), then vertical ones (left to right). A gem at the
    crossing of an L or T shape belongs to two runs.
    """
    gems = [[t.gem if t is not None else None for t in row] for row in board]
    lines: list[tuple[int, tuple[Pos, ...]]] = []
    for r, row in enumerate(gems):
        for g, start, end in _runs(row):
            lines.append((g, tuple((r, k) for k in range(start, end))))
    for c, column in enumerate(zip(*gems, strict=True)):
        for g, start, end in _runs(column):
            lines.append((g, tuple((k, c) for k in range(start, end))))
    return lines


def _runs(cells: Sequence[int | None]) -> Iterable[tuple[int, int, int]]:
    """``(gem, start, end)`` of each run of >= 3 equal gems in one row or column."""
    n = len(cells)
    start = 0
    while start < n:
        g = cells[start]
        end = start + 1
        while end < n and cells[end] == g:
            end += 1
        if g is not None and end - start >= 3:
            yield g, start, end
        start = end


def _run_through(board: Board, pos: Pos, gem: int, swap: tuple[Pos, Pos] | None = None) -> bool:
    """Would a gem of class ``gem`` at ``pos`` be part of a line of three (other cells as they are,
    or as after ``swap``)?"""
    r, c = pos
    for dr, dc in ((0, 1), (1, 0)):
        count = 1
        for sign in (1, -1):
            k = 1
            while _gem(board, r + sign * dr * k, c + sign * dc * k, swap) == gem:
                count += 1
                k += 1
        if count >= 3:
            return True
    return False


def tempting_classes(board: Board, pos: Pos, n_classes: int) -> tuple[int, ...]:
    """Classes that would complete a line if the tile at ``pos`` were judged as them."""
    return tuple(k for k in range(n_classes) if _run_through(board, pos, k))


def _with(board: Board, changes: dict[Pos, Tile | None]) -> Board:
    """The board with ``changes`` applied; rows without a change are shared, not copied."""
    changed: dict[int, list[Tile | None]] = {}
    for (r, c), tile in changes.items():
        changed.setdefault(r, list(board[r]))[c] = tile
    rows = list(board)
    for r, row in changed.items():
        rows[r] = tuple(row)
    return tuple(rows)


def _swapped(board: Board, a: Pos, b: Pos) -> Board:
    return _with(board, {a: board[b[0]][b[1]], b: board[a[0]][a[1]]})


def valid_swaps(board: Board) -> list[tuple[int, int]]:
    """Pairs of tile ids whose swap makes a line (right and down neighbours, row-major order)."""
    out: list[tuple[int, int]] = []
    rows, cols = len(board), len(board[0])
    for r in range(rows):
        for c in range(cols):
            for nr, nc in ((r, c + 1), (r + 1, c)):
                if nr >= rows or nc >= cols:
                    continue
                a, b = board[r][c], board[nr][nc]
                if a is None or b is None or a.gem is None or b.gem is None or a.gem == b.gem:
                    continue
                swap = ((r, c), (nr, nc))
                if _run_through(board, (r, c), b.gem, swap) or _run_through(
                    board, (nr, nc), a.gem, swap
                ):
                    out.append((a.tile_id, b.tile_id))
    return out


def hint(state: Match3State) -> tuple[int, int] | None:
    """A swap that makes a line, for an idle-player hint, or None."""
    swaps = valid_swaps(state.board)
    return swaps[0] if swaps else None


def _holes(board: Board) -> int:
    return sum(t is None for row in board for t in row)


def _has_unjudged(board: Board) -> bool:
    return any(t is not None and t.gem is None for row in board for t in row)


def _drop_and_refill(
    board: Board, queue: tuple[TileSpec, ...], next_id: int
) -> tuple[Board, tuple[TileSpec, ...], int, tuple[int, ...]]:
    """Let tiles fall into holes, then drop queued tiles in from the top, column by column."""
    rows, cols = len(board), len(board[0])
    if _holes(board) == 0:
        return board, queue, next_id, ()
    columns: list[list[Tile | None]] = []
    q = list(queue)
    new_ids: list[int] = []
    for c in range(cols):
        stack = [board[r][c] for r in range(rows) if board[r][c] is not None]
        fresh: list[Tile] = []
        while len(stack) + len(fresh) < rows and q:
            spec = q.pop(0)
            fresh.append(_tile(next_id, spec.image_id, None, spec.gold_class))
            new_ids.append(next_id)
            next_id += 1
        # the first tile taken falls furthest
        col: list[Tile | None] = [None] * (rows - len(stack) - len(fresh))
        col += list(reversed(fresh)) + stack
        columns.append(col)
    new_board = tuple(tuple(columns[c][r] for c in range(cols)) for r in range(rows))
    return new_board, tuple(q), next_id, tuple(new_ids)


@dataclass
class _Settle:
    board: Board
    queue: tuple[TileSpec, ...]
    next_id: int
    points: int = 0
    cleared: int = 0
    max_cascade: int = 0


def _settle(
    board: Board, queue: tuple[TileSpec, ...], next_id: int, scoring: Scoring
) -> tuple[_Settle, list[Event]]:
    """Drop, refill and clear lines until the board is stable. Returns (_Settle, events)."""
    s = _Settle(board, queue, next_id)
    events: list[Event] = []
    cascade = 0
    while True:
        s.board, s.queue, s.next_id, new_ids = _drop_and_refill(s.board, s.queue, s.next_id)
        if new_ids:
            events.append(Refilled(new_ids))
        lines = find_lines(s.board)
        if not lines:
            break
        cascade += 1
        multiplier = min(cascade, scoring.max_multiplier)
        cells = sorted({p for _, line in lines for p in line})
        points = multiplier * sum(scoring.line_points(len(line)) for _, line in lines)
        tile_ids = tuple(t.tile_id for p in cells if (t := s.board[p[0]][p[1]]) is not None)
        events.append(
            Cleared(
                cascade=cascade,
                multiplier=multiplier,
                tile_ids=tile_ids,
                lines=tuple((g, len(line)) for g, line in lines),
                points=points,
            )
        )
        s.board = _with(s.board, dict.fromkeys(cells))
        s.points += points
        s.cleared += len(cells)
        s.max_cascade = max(s.max_cascade, cascade)
    return s, events


# ------------------------------------------------------------------------------------------- apply
def rng_for(state: Match3State) -> np.random.Generator:
    """A generator derived from the state's seed and step: persist the state, not the generator."""
    return np.random.default_rng([state.seed, state.step])


class Shuffler(Protocol):
    """What the engine draws from: only a dead board's reshuffle is random."""

    def permutation(self, x: int, /) -> np.ndarray: ...


class _StateRng:
    """``rng_for(state)``, built on its first draw: building a generator took a tenth of a move's
    time, and most moves never draw."""

    __slots__ = ("_key", "_generator")

    def __init__(self, state: Match3State) -> None:
        self._key = [state.seed, state.step]
        self._generator: np.random.Generator | None = None

    def permutation(self, x: int, /) -> np.ndarray:
        if self._generator is None:
            self._generator = np.random.default_rng(self._key)
        return self._generator.permutation(x)


def new_game(
    config: LevelConfig, tiles: Sequence[TileSpec], *, seed: int
) -> tuple[Match3State, list[Event]]:
    """Start a level with the service's first tiles (ideally ``rows*cols + queue_target``)."""
    board: Board = tuple(tuple(None for _ in range(config.cols)) for _ in range(config.rows))
    state = Match3State(config=config, board=board, queue=(), seed=seed, lives=config.lives)
    state, events = _accept_tiles(state, tiles, exhausted=False)
    s, settle_events = _settle(state.board, state.queue, state.next_tile_id, config.scoring)
    state = _evolve(state, board=s.board, queue=s.queue, next_tile_id=s.next_id)
    events += settle_events
    state, more = _request_tiles(state)
    return state, events + more


def _accept_tiles(
    state: Match3State, tiles: Sequence[TileSpec], *, exhausted: bool
) -> tuple[Match3State, list[Event]]:
    seen = set(state.seen_images)
    accepted: list[TileSpec] = []
    events: list[Event] = []
    for spec in tiles:
        if spec.gold_class is not None and not 0 <= spec.gold_class < state.config.n_classes:
            raise InvalidMove(f"gold class {spec.gold_class} out of range")
        if spec.image_id in seen:
            events.append(DuplicateImageDropped(spec.image_id))
            continue
        seen.add(spec.image_id)
        accepted.append(spec)
    state = _evolve(
        state,
        queue=state.queue + tuple(accepted),
        seen_images=frozenset(seen),
        tiles_requested=max(0, state.tiles_requested - len(tiles)),
        source_exhausted=state.source_exhausted or exhausted,
    )
    return state, events


def _request_tiles(state: Match3State) -> tuple[Match3State, list[Event]]:
    if state.source_exhausted or state.status != "playing":
        return state, []
    cfg = state.config
    available = len(state.queue) + state.tiles_requested - _holes(state.board)
    if available >= cfg.queue_low_water:
        return state, []
    count = cfg.queue_target - available
    return _evolve(state, tiles_requested=state.tiles_requested + count), [NeedTiles(count)]


def _goals_met(state: Match3State) -> bool:
    g = state.config.goals
    return (
        state.gems_cleared >= g.clear_gems
        and state.score >= g.score
        and state.judgements >= g.judgements
    )


def _unstick(state: Match3State, rng: Shuffler) -> tuple[Match3State, list[Event]]:
    """Reshuffle a board with no move; reset it when no reshuffle helps."""
    board = state.board
    if _has_unjudged(board) or valid_swaps(board):
        return state, []
    if _holes(board) and not state.source_exhausted:
        return state, []  # tiles are on their way
    gem_cells = [p for p, t in _positions(board) if t is not None]
    tiles = [board[r][c] for r, c in gem_cells]
    for _ in range(30):
        order = rng.permutation(len(tiles))
        trial = _with(board, {p: tiles[i] for p, i in zip(gem_cells, order, strict=True)})
        if not find_lines(trial) and valid_swaps(trial):
            return _evolve(state, board=trial), [Reshuffled()]
    if state.source_exhausted and not state.queue:
        return state, []  # nothing to reset with; _finish ends the level
    removed = tuple(t.tile_id for t in tiles if t is not None)
    cleared = _with(board, dict.fromkeys(gem_cells))
    s, events = _settle(cleared, state.queue, state.next_tile_id, state.config.scoring)
    state = _evolve(
        state,
        board=s.board,
        queue=s.queue,
        next_tile_id=s.next_id,
        score=state.score + s.points,
        gems_cleared=state.gems_cleared + s.cleared,
        tiles_removed_unscored=state.tiles_removed_unscored + len(removed),
    )
    return state, [BoardReset(removed), *events]


def _finish(state: Match3State) -> tuple[Match3State, list[Event]]:
    if state.status != "playing":
        return state, []
    if _goals_met(state):
        bonus = state.moves_left * state.config.scoring.move_bonus
        score = state.score + bonus
        return _evolve(state, status="won", score=score), [LevelComplete(score, bonus)]
    reason = ""
    if state.lives <= 0:
        reason = "out_of_lives"
    elif state.moves_used >= state.config.moves:
        reason = "out_of_moves"
    elif (
        not _has_unjudged(state.board)
        and not valid_swaps(state.board)
        and state.source_exhausted
        and not state.queue
    ):
        reason = "out_of_images"
    if reason:
        return _evolve(state, status="lost", end_reason=reason), [LevelFailed(reason)]
    return state, []


def _after_move(
    state: Match3State, events: list[Event], rng: Shuffler
) -> tuple[Match3State, list[Event]]:
    s, settle_events = _settle(state.board, state.queue, state.next_tile_id, state.config.scoring)
    state = _evolve(
        state,
        board=s.board,
        queue=s.queue,
        next_tile_id=s.next_id,
        score=state.score + s.points,
        gems_cleared=state.gems_cleared + s.cleared,
        max_cascade=max(state.max_cascade, s.max_cascade),
    )
    events += settle_events
    state, more = _finish(state)
    events += more
    if state.status == "playing":
        state, more = _unstick(state, rng)
        events += more
        state, more = _finish(state)
        events += more
    state, more = _request_tiles(state)
    events += more
    return state, events


def _judge(state: Match3State, move: Judge, rng: Shuffler) -> tuple[Match3State, list[Event]]:
    cfg = state.config
    pos = find_tile(state.board, move.tile_id)
    if pos is None:
        raise InvalidMove(f"tile {move.tile_id} is not on the board")
    tile = state.board[pos[0]][pos[1]]
    assert tile is not None  # noqa: S101 - find_tile only returns occupied cells
    if tile.gem is not None:
        raise InvalidMove(f"tile {move.tile_id} is already judged")
    if not 0 <= move.class_index < cfg.n_classes:
        raise InvalidMove(f"class {move.class_index} out of range")

    if move.response_ms < cfg.min_response_ms:
        event = TooFast(tile.tile_id, tile.image_id, move.response_ms, cfg.min_response_ms)
        return _evolve(state, too_fast=state.too_fast + 1, streak=0), [event]

    tempting = tempting_classes(state.board, pos, cfg.n_classes)
    completed = move.class_index in tempting
    is_gold = tile.gold_class is not None
    label = Label(
        tile_id=tile.tile_id,
        image_id=tile.image_id,
        class_index=move.class_index,
        response_ms=move.response_ms,
        gold=is_gold,
        completed_line=completed and not (is_gold and move.class_index != tile.gold_class),
        tempting_classes=tempting,
    )
    events: list[Event] = [label]
    state = _evolve(state, moves_used=state.moves_used + 1, judgements=state.judgements + 1)

    if is_gold and move.class_index != tile.gold_class:
        assert tile.gold_class is not None  # noqa: S101 - narrowed by is_gold
        penalty = min(cfg.scoring.gold_wrong, state.score) if cfg.gold_penalty else 0
        lives = state.lives - 1 if cfg.gold_penalty else state.lives
        refs = cfg.reference_images[tile.gold_class] if cfg.reference_images else ()
        events.append(
            GoldWrong(
                tile_id=tile.tile_id,
                image_id=tile.image_id,
                chosen_class=move.class_index,
                correct_class=tile.gold_class,
                reference_image_ids=refs,
                points_lost=penalty,
                lives_left=lives,
            )
        )
        state = _evolve(
            state,
            board=_with(state.board, {pos: None}),  # the tile shatters: no line from it
            lives=lives,
            score=state.score - penalty,
            streak=0,
            gold_wrong=state.gold_wrong + 1,
        )
        return _after_move(state, events, rng)

    gem = _tile(tile.tile_id, tile.image_id, move.class_index, tile.gold_class)
    streak = state.streak + 1
    bonus = 0
    if is_gold:
        bonus += cfg.scoring.gold_correct
        events.append(GoldCorrect(tile.tile_id, move.class_index, cfg.scoring.gold_correct))
    if cfg.scoring.streak_every and streak % cfg.scoring.streak_every == 0:
        bonus += cfg.scoring.streak_bonus
        events.append(StreakBonus(streak, cfg.scoring.streak_bonus))
    state = _evolve(
        state,
        board=_with(state.board, {pos: gem}),
        score=state.score + bonus,
        streak=streak,
        max_streak=max(state.max_streak, streak),
        gold_correct=state.gold_correct + int(is_gold),
    )
    return _after_move(state, events, rng)


def _swap(state: Match3State, move: Swap, rng: Shuffler) -> tuple[Match3State, list[Event]]:
    a, b = find_tile(state.board, move.tile_a), find_tile(state.board, move.tile_b)
    if a is None or b is None:
        raise InvalidMove("both tiles must be on the board")
    if abs(a[0] - b[0]) + abs(a[1] - b[1]) != 1:
        raise InvalidMove("only neighbouring tiles can be swapped")
    ta, tb = state.board[a[0]][a[1]], state.board[b[0]][b[1]]
    if ta is None or tb is None or ta.gem is None or tb.gem is None:
        raise InvalidMove("only gems can be swapped; judge an image to make it a gem")
    trial = _swapped(state.board, a, b)
    if ta.gem == tb.gem or not (_run_through(trial, a, tb.gem) or _run_through(trial, b, ta.gem)):
        return state, [SwapReverted(move.tile_a, move.tile_b)]
    state = _evolve(state, board=trial, moves_used=state.moves_used + 1)
    return _after_move(state, [Swapped(move.tile_a, move.tile_b)], rng)


def apply(
    state: Match3State, move: Move, rng: Shuffler | None = None
) -> tuple[Match3State, list[Event]]:
    """Apply one move.

    Parameters
    ----------
    state : Match3State
        Current state (not modified).
    move : Judge | Swap | SupplyTiles | Quit
        The move.
    rng : numpy.random.Generator, optional
        Source of randomness (only used to reshuffle a board without moves). The default,
        ``rng_for(state)`` built only if a reshuffle needs it, makes play reproducible.

    Returns
    -------
    (Match3State, list of Event)
        The new state and what happened, in order.

    Raises
    ------
    InvalidMove
        For a move that does not fit the state; the state is then unchanged.
    """
    if rng is None:
        rng = _StateRng(state)
    if isinstance(move, SupplyTiles):
        new, events = _accept_tiles(state, move.tiles, exhausted=move.exhausted)
        new = _evolve(new, step=state.step + 1)
        if new.status != "playing":
            return new, events
        new, more = _after_move(new, events, rng)
        return new, more
    if state.status != "playing":
        raise InvalidMove(f"the level is over ({state.status})")
    if isinstance(move, Quit):
        new = _evolve(state, status="lost", end_reason="quit", step=state.step + 1)
        return new, [LevelFailed("quit")]
    if isinstance(move, Judge):
        new, events = _judge(state, move, rng)
    elif isinstance(move, Swap):
        new, events = _swap(state, move, rng)
    else:
        raise InvalidMove(f"unknown move {move!r}")
    return _evolve(new, step=state.step + 1), events


def apply_delayed_points(
    state: Match3State, *, image_id: str, points: int
) -> tuple[Match3State, list[Event]]:
    """Credit points that the service awarded once consensus settled on ``image_id``.

    Works on finished levels too (consensus usually settles after the level); it never changes the
    level's status. Compute ``points`` with :func:`games.engine.progression.delayed_points`.
    """
    if points < 0:
        raise InvalidMove("delayed points are never negative")
    new = _evolve(state, delayed_score=state.delayed_score + points)
    return new, [DelayedPoints(image_id, points)]


def public_view(state: Match3State) -> dict[str, Any]:
    """What the player's browser may see: no gold answers, no queue, no other player's answers."""
    cfg = state.config
    board = [
        [
            None if t is None else {"tile_id": t.tile_id, "image_id": t.image_id, "gem": t.gem}
            for t in row
        ]
        for row in state.board
    ]
    return {
        "level_id": cfg.level_id,
        "status": state.status,
        "end_reason": state.end_reason,
        "tutorial": cfg.tutorial,
        "rows": cfg.rows,
        "cols": cfg.cols,
        "classes": [
            {
                "index": k,
                "name": name,
                "colour": CLASS_STYLES[k].colour,
                "shape": CLASS_STYLES[k].shape,
                "key": CLASS_STYLES[k].key,
                "references": list(cfg.reference_images[k]) if cfg.reference_images else [],
            }
            for k, name in enumerate(cfg.class_names)
        ],
        "board": board,
        "score": state.score,
        "delayed_score": state.delayed_score,
        "moves_left": state.moves_left,
        "lives": state.lives,
        "streak": state.streak,
        "goals": vars(cfg.goals).copy(),
        "progress": {
            "clear_gems": state.gems_cleared,
            "score": state.score,
            "judgements": state.judgements,
        },
        "min_response_ms": cfg.min_response_ms,
        "waiting_for_tiles": _holes(state.board) > 0 and not state.source_exhausted,
    }


def level_summary(state: Match3State) -> dict[str, Any]:
    """Per-level statistics for badges, skill tracking and leaderboards."""
    return {
        "level_id": state.config.level_id,
        "status": state.status,
        "score": state.score,
        "judgements": state.judgements,
        "gold_correct": state.gold_correct,
        "gold_wrong": state.gold_wrong,
        "too_fast": state.too_fast,
        "max_streak": state.max_streak,
        "max_cascade": state.max_cascade,
        "gems_cleared": state.gems_cleared,
        "perfect": state.status == "won" and state.gold_wrong == 0 and state.too_fast == 0,
    }
