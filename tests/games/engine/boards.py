"""Helpers to build match-three states from little text pictures."""

from dataclasses import replace

from games.engine.match3 import Goals, LevelConfig, Match3State, Tile, TileSpec, new_game

CLASSES4 = ("a", "b", "c", "d")


def config(**overrides) -> LevelConfig:
    params = {
        "level_id": "L1",
        "class_names": CLASSES4,
        "rows": 4,
        "cols": 4,
        "moves": 20,
        "lives": 3,
        "goals": Goals(clear_gems=1000),
        "queue_target": 8,
        "queue_low_water": 4,
        "reference_images": (("ra",), ("rb",), ("rc",), ("rd",)),
    }
    params.update(overrides)
    return LevelConfig(**params)


def specs(n: int, prefix: str = "q", gold: dict[int, int] | None = None) -> tuple[TileSpec, ...]:
    gold = gold or {}
    return tuple(TileSpec(f"{prefix}{i}", gold.get(i)) for i in range(n))


def board_state(picture: str, queue: int = 8, **overrides) -> Match3State:
    """Cells: ``.`` hole, ``?`` unjudged image, ``0``-``7`` gem, ``g2`` unjudged gold of class 2.

    Tile ids are assigned row-major from 0; image ids are ``b<tile_id>``; queued images ``q<i>``.
    """
    rows = [line.split() for line in picture.strip().splitlines()]
    cfg = config(rows=len(rows), cols=len(rows[0]), **overrides)
    state, _ = new_game(cfg, (), seed=7)
    next_id = 0
    board = []
    for row in rows:
        out = []
        for cell in row:
            if cell == ".":
                out.append(None)
                continue
            if cell == "?":
                tile = Tile(next_id, f"b{next_id}")
            elif cell.startswith("g"):
                tile = Tile(next_id, f"b{next_id}", None, int(cell[1:]))
            else:
                tile = Tile(next_id, f"b{next_id}", int(cell))
            out.append(tile)
            next_id += 1
        board.append(tuple(out))
    q = specs(queue)
    return replace(
        state,
        board=tuple(board),
        queue=q,
        next_tile_id=next_id,
        tiles_requested=0,
        seen_images=frozenset([f"b{i}" for i in range(next_id)] + [s.image_id for s in q]),
    )


def picture(state: Match3State) -> str:
    """Inverse of board_state's cell syntax (``?`` for any unjudged tile)."""
    lines = []
    for row in state.board:
        cells = []
        for t in row:
            if t is None:
                cells.append(".")
            elif t.gem is None:
                cells.append("?")
            else:
                cells.append(str(t.gem))
        lines.append(" ".join(cells))
    return "\n".join(lines)


def tile_at(state: Match3State, r: int, c: int) -> Tile:
    tile = state.board[r][c]
    assert tile is not None
    return tile
