"""Property tests: whatever a player does, the board settles and tiles are conserved."""

from hypothesis import given, settings
from hypothesis import strategies as st

from games.engine.match3 import Match3State

from .boards import config
from .test_match3 import assert_invariants, random_play


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_classes=st.integers(2, 8),
    rows=st.integers(3, 8),
    cols=st.integers(3, 8),
)
def test_any_play_settles_and_conserves_tiles(seed, n_classes, rows, cols):
    cfg = config(
        rows=rows,
        cols=cols,
        moves=10_000,
        lives=10_000,
        class_names=tuple(f"c{i}" for i in range(n_classes)),
        reference_images=(),
    )
    states = [s for s, _ in random_play(seed, 40, cfg)]
    for state in states:
        assert_invariants(state)
    last = states[-1]
    assert Match3State.from_dict(last.to_dict()) == last
