import json
from dataclasses import replace

import numpy as np
import pytest

from games.engine.common import InvalidMove
from games.engine.match3 import (
    CLASS_STYLES,
    BoardReset,
    Cleared,
    DelayedPoints,
    DuplicateImageDropped,
    Goals,
    GoldCorrect,
    GoldWrong,
    Judge,
    Label,
    LevelComplete,
    LevelConfig,
    LevelFailed,
    Match3State,
    NeedTiles,
    Quit,
    Refilled,
    Reshuffled,
    Scoring,
    StreakBonus,
    SupplyTiles,
    Swap,
    Swapped,
    SwapReverted,
    TileSpec,
    TooFast,
    apply,
    apply_delayed_points,
    client_events,
    find_lines,
    hint,
    level_summary,
    new_game,
    public_view,
    rng_for,
    tempting_classes,
    tutorial_level,
    valid_swaps,
)
from games.engine.progression import delayed_points

from .boards import board_state, config, picture, specs, tile_at

RNG = np.random.default_rng(0)

LINE_READY = """
0 0 ? 1
? ? ? ?
? ? ? ?
? ? ? ?
"""


def play(state, move):
    return apply(state, move, rng_for(state))


# ------------------------------------------------------------------------------- new game / refill
def test_new_game_fills_board_with_unjudged_tiles_and_queues_the_rest():
    cfg = config()
    state, events = new_game(cfg, specs(19), seed=1)
    assert picture(state) == "\n".join(["? ? ? ?"] * 4)
    assert state.next_tile_id == 16
    assert len(state.queue) == 3
    assert events == [Refilled(tuple(range(16))), NeedTiles(5)]
    assert state.tiles_requested == 5
    full, events = new_game(cfg, specs(20), seed=1)
    assert events == [Refilled(tuple(range(16)))]  # 4 queued = low water: no request


def test_first_tile_taken_falls_furthest():
    state, _ = new_game(config(), specs(16), seed=1)
    column0 = [state.board[r][0].image_id for r in range(4)]
    assert column0 == ["q3", "q2", "q1", "q0"]


def test_new_game_with_too_few_tiles_leaves_holes_and_asks_for_more():
    state, events = new_game(config(), specs(10), seed=1)
    assert sum(t is None for row in state.board for t in row) == 6
    # 6 holes, empty queue: ask for the holes plus a full queue
    assert events[-1] == NeedTiles(14)
    assert public_view(state)["waiting_for_tiles"] is True


def test_class_styles_pair_each_colour_with_a_distinct_shape():
    assert len(CLASS_STYLES) == 8
    assert len({s.shape for s in CLASS_STYLES}) == 8
    assert len({s.colour for s in CLASS_STYLES}) == 8
    assert [s.key for s in CLASS_STYLES] == [str(i) for i in range(1, 9)]


@pytest.mark.parametrize("n", [1, 9])
def test_level_needs_two_to_eight_classes(n):
    with pytest.raises(ValueError, match="classes"):
        LevelConfig(level_id="x", class_names=tuple(str(i) for i in range(n)))


def test_level_needs_a_goal_and_positive_limits():
    with pytest.raises(ValueError, match="goal"):
        LevelConfig(level_id="x", class_names=("a", "b"), goals=Goals())
    with pytest.raises(ValueError, match="positive"):
        LevelConfig(level_id="x", class_names=("a", "b"), moves=0)
    assert LevelConfig(level_id="x", class_names=("a", "b")).goals == Goals(clear_gems=30)


# ----------------------------------------------------------------------------------- judging, lines
def test_judgement_completing_a_line_clears_and_refills():
    state = board_state(LINE_READY)
    new, events = play(state, Judge(tile_id=2, class_index=0, response_ms=1200))
    assert events == [
        Label(2, "b2", 0, 1200, gold=False, completed_line=True, tempting_classes=(0,)),
        Cleared(cascade=1, multiplier=1, tile_ids=(0, 1, 2), lines=((0, 3),), points=30),
        Refilled((16, 17, 18)),
    ]
    assert picture(new).splitlines()[0] == "? ? ? 1"
    assert new.score == 30
    assert new.gems_cleared == 3
    assert new.moves_used == 1
    assert new.judgements == 1
    assert new.streak == 1
    assert len(new.queue) == 5
    assert state.score == 0  # the input state is untouched


def test_judgement_without_a_line_just_makes_a_gem():
    state = board_state(LINE_READY)
    new, events = play(state, Judge(tile_id=2, class_index=1, response_ms=900))
    assert events == [
        Label(2, "b2", 1, 900, gold=False, completed_line=False, tempting_classes=(0,)),
    ]
    assert picture(new).splitlines()[0] == "0 0 1 1"
    assert new.score == 0
    assert tile_at(new, 0, 2).gem == 1


def test_cascade_doubles_the_second_wave():
    state = board_state(
        """
        1 ? ? ?
        0 ? 0 ?
        1 ? ? ?
        1 ? ? ?
        """
    )
    new, events = play(state, Judge(tile_id=5, class_index=0, response_ms=800))
    assert events == [
        Label(5, "b5", 0, 800, gold=False, completed_line=True, tempting_classes=(0,)),
        Cleared(cascade=1, multiplier=1, tile_ids=(4, 5, 6), lines=((0, 3),), points=30),
        Refilled((16, 17, 18)),
        Cleared(cascade=2, multiplier=2, tile_ids=(0, 8, 12), lines=((1, 3),), points=60),
        Refilled((19, 20, 21)),
        NeedTiles(6),
    ]
    assert new.score == 90
    assert new.gems_cleared == 6
    assert new.max_cascade == 2
    assert find_lines(new.board) == []


def test_combo_multiplier_is_capped():
    scoring = Scoring(max_multiplier=1)
    state = board_state(
        """
        1 ? ? ?
        0 ? 0 ?
        1 ? ? ?
        1 ? ? ?
        """,
        scoring=scoring,
    )
    new, events = play(state, Judge(tile_id=5, class_index=0, response_ms=800))
    assert [e.multiplier for e in events if isinstance(e, Cleared)] == [1, 1]
    assert new.score == 60


def test_l_shape_scores_both_lines():
    state = board_state(
        """
        0 0 ? ?
        ? ? 0 ?
        ? ? 0 ?
        ? ? ? ?
        """
    )
    new, events = play(state, Judge(tile_id=2, class_index=0, response_ms=800))
    cleared = [e for e in events if isinstance(e, Cleared)]
    assert cleared == [
        Cleared(
            cascade=1, multiplier=1, tile_ids=(0, 1, 2, 6, 10), lines=((0, 3), (0, 3)), points=60
        )
    ]
    assert new.gems_cleared == 5


@pytest.mark.parametrize(("length", "points"), [(3, 30), (4, 60), (5, 100), (6, 140), (2, 0)])
def test_line_points(length, points):
    assert Scoring().line_points(length) == points


def test_tempting_classes_lists_every_line_completing_class():
    state = board_state(
        """
        0 0 ? 1
        ? ? ? 1
        ? ? ? ?
        ? ? ? ?
        """
    )
    assert tempting_classes(state.board, (0, 2), 4) == (0,)
    assert tempting_classes(state.board, (2, 3), 4) == (1,)
    state = board_state(
        """
        0 0 ? ?
        ? ? 2 ?
        ? ? 2 ?
        ? ? ? ?
        """
    )
    assert tempting_classes(state.board, (0, 2), 4) == (0, 2)


@pytest.mark.parametrize(
    ("move", "message"),
    [
        (Judge(99, 0, 1000), "not on the board"),
        (Judge(0, 0, 1000), "already judged"),
        (Judge(2, 4, 1000), "out of range"),
        (Judge(2, -1, 1000), "out of range"),
    ],
)
def test_bad_judgements_are_refused(move, message):
    state = board_state(LINE_READY)
    with pytest.raises(InvalidMove, match=message):
        play(state, move)


# ------------------------------------------------------------------------------------------- swaps
SWAP_READY = """
0 1 0 0
? 0 ? ?
? ? ? ?
? ? ? ?
"""


def test_valid_swap_clears_and_costs_a_move():
    state = board_state(SWAP_READY)
    assert (1, 5) in valid_swaps(state.board)
    new, events = play(state, Swap(1, 5))
    assert events == [
        Swapped(1, 5),
        Cleared(cascade=1, multiplier=1, tile_ids=(0, 5, 2, 3), lines=((0, 4),), points=60),
        Refilled((16, 17, 18, 19)),
    ]
    assert tile_at(new, 1, 1).tile_id == 1
    assert new.moves_used == 1
    assert new.score == 60


@pytest.mark.parametrize(("a", "b"), [(1, 2), (2, 3)])
def test_swap_without_a_line_reverts_for_free(a, b):
    state = board_state(SWAP_READY)
    new, events = play(state, Swap(a, b))
    assert events == [SwapReverted(a, b)]
    assert new == replace(state, step=state.step + 1)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [(0, 5, "neighbouring"), (0, 4, "only gems"), (0, 99, "on the board"), (0, 2, "neighbouring")],
)
def test_illegal_swaps_are_refused(a, b, message):
    state = board_state(SWAP_READY)
    with pytest.raises(InvalidMove, match=message):
        play(state, Swap(a, b))


def test_hint_returns_a_line_making_swap():
    state = board_state(SWAP_READY)
    assert hint(state) == (0, 1)
    new, events = play(state, Swap(*hint(state)))
    assert isinstance(events[0], Swapped)
    assert hint(board_state(LINE_READY)) is None


# -------------------------------------------------------------------------------------------- gold
GOLD_READY = """
0 0 g1 ?
?  ?  ? ?
?  ?  ? ?
?  ?  ? ?
"""


def test_right_gold_answer_scores_immediately():
    state = board_state(GOLD_READY)
    new, events = play(state, Judge(2, 1, 1500))
    assert events == [
        Label(2, "b2", 1, 1500, gold=True, completed_line=False, tempting_classes=(0,)),
        GoldCorrect(2, 1, 50),
    ]
    assert new.score == 50
    assert new.gold_correct == 1
    assert tile_at(new, 0, 2).gem == 1


def test_wrong_gold_answer_costs_a_life_and_points_and_shows_the_answer():
    state = replace(board_state(GOLD_READY), score=150, streak=4)
    new, events = play(state, Judge(2, 0, 1500))
    assert events == [
        Label(2, "b2", 0, 1500, gold=True, completed_line=False, tempting_classes=(0,)),
        GoldWrong(
            tile_id=2,
            image_id="b2",
            chosen_class=0,
            correct_class=1,
            reference_image_ids=("rb",),
            points_lost=100,
            lives_left=2,
        ),
        Refilled((16,)),
    ]
    assert new.lives == 2
    assert new.score == 50
    assert new.streak == 0
    assert new.gold_wrong == 1
    assert new.gems_cleared == 0  # the shattered tile made no line
    assert picture(new).splitlines()[0] == "0 0 ? ?"


def test_wrong_gold_never_takes_the_score_below_zero():
    state = board_state(GOLD_READY)
    new, events = play(state, Judge(2, 3, 1500))
    assert new.score == 0
    assert events[1].points_lost == 0


def test_tutorial_gold_mistakes_cost_nothing():
    state = board_state(GOLD_READY, tutorial=True)
    new, events = play(state, Judge(2, 0, 1500))
    assert events[1].points_lost == 0
    assert events[1].lives_left == 3
    assert events[1].correct_class == 1
    assert new.lives == 3


def test_tutorial_level_defaults():
    cfg = tutorial_level("t", ("benign", "malignant"), (("r1", "r2"), ("r3",)))
    assert cfg.tutorial is True
    assert cfg.gold_penalty is False
    assert cfg.reference_images == (("r1", "r2"), ("r3",))
    assert public_view(new_game(cfg, specs(40), seed=0)[0])["classes"][1]["references"] == ["r3"]


def test_last_life_lost_ends_the_level():
    state = replace(board_state(GOLD_READY), lives=1)
    new, events = play(state, Judge(2, 0, 1500))
    assert events[-1] == LevelFailed("out_of_lives")
    assert new.status == "lost"
    assert new.end_reason == "out_of_lives"
    with pytest.raises(InvalidMove, match="over"):
        play(new, Judge(3, 0, 1500))


# ---------------------------------------------------------------------------------------- too fast
def test_too_fast_answer_earns_nothing_and_changes_nothing_on_the_board():
    state = replace(board_state(GOLD_READY), streak=7)
    new, events = play(state, Judge(2, 0, 120))
    assert events == [TooFast(2, "b2", 120, 400)]
    assert new.board == state.board
    assert new.moves_used == 0
    assert new.judgements == 0
    assert new.lives == 3
    assert new.too_fast == 1
    assert new.streak == 0
    assert not any(isinstance(e, GoldWrong | Label) for e in events)  # no gold answer leaked


def test_min_response_time_is_a_parameter():
    state = board_state(LINE_READY, min_response_ms=1000)
    _, events = play(state, Judge(2, 0, 999))
    assert events == [TooFast(2, "b2", 999, 1000)]
    _, events = play(state, Judge(2, 0, 1000))
    assert isinstance(events[0], Label)


# ------------------------------------------------------------------------------------------ streak
def test_streak_bonus_every_ten_judgements():
    state = replace(board_state(LINE_READY), streak=9)
    new, events = play(state, Judge(4, 0, 1000))
    assert StreakBonus(10, 50) in events
    assert new.streak == 10
    assert new.max_streak == 10
    assert new.score == 50


# ------------------------------------------------------------------------------------ level result
def test_reaching_the_goals_wins_with_a_bonus_for_moves_left():
    state = board_state(LINE_READY, goals=Goals(clear_gems=3))
    new, events = play(state, Judge(2, 0, 1000))
    assert events[-1] == LevelComplete(score=30 + 19 * 20, move_bonus=19 * 20)
    assert new.status == "won"
    assert level_summary(new)["perfect"] is True
    with pytest.raises(InvalidMove):
        play(new, Judge(3, 0, 1000))


def test_running_out_of_moves_fails():
    state = board_state(LINE_READY, moves=1)
    new, events = play(state, Judge(4, 0, 1000))
    assert events[-1] == LevelFailed("out_of_moves")
    assert new.status == "lost"


def test_last_move_that_meets_the_goal_wins():
    state = board_state(LINE_READY, moves=1, goals=Goals(clear_gems=3))
    new, events = play(state, Judge(2, 0, 1000))
    assert events[-1] == LevelComplete(score=30, move_bonus=0)


def test_score_and_judgement_goals():
    state = board_state(LINE_READY, goals=Goals(score=30, judgements=2))
    new, _ = play(state, Judge(2, 0, 1000))
    assert new.status == "playing"
    new, events = play(new, Judge(16, 2, 1000))
    assert new.status == "won"
    assert isinstance(events[-1], LevelComplete)


def test_quit():
    new, events = play(board_state(LINE_READY), Quit())
    assert events == [LevelFailed("quit")]
    assert new.end_reason == "quit"


# ----------------------------------------------------------------------------------- tile supply
def test_empty_queue_leaves_holes_until_the_service_supplies():
    state = board_state(LINE_READY, queue=0)
    new, events = play(state, Judge(2, 0, 1000))
    assert events[-1] == NeedTiles(11)
    assert picture(new).splitlines()[0] == ". . . 1"
    assert public_view(new)["waiting_for_tiles"] is True
    new, events = play(new, SupplyTiles(specs(11, prefix="s")))
    assert events == [Refilled((16, 17, 18))]
    assert picture(new).splitlines()[0] == "? ? ? 1"
    assert len(new.queue) == 8
    assert new.tiles_requested == 0


def test_supplied_tiles_never_repeat_an_image():
    state = board_state(LINE_READY)
    new, events = play(state, SupplyTiles((TileSpec("q0"), TileSpec("b5"), TileSpec("new"))))
    assert events == [DuplicateImageDropped("q0"), DuplicateImageDropped("b5")]
    assert new.queue[-1] == TileSpec("new")
    assert len(new.queue) == 9


def test_supplied_gold_class_must_exist():
    with pytest.raises(InvalidMove):
        play(board_state(LINE_READY), SupplyTiles((TileSpec("x", 7),)))


# ---------------------------------------------------------------------------------- dead boards
def test_dead_board_is_reshuffled_deterministically():
    state = board_state(
        """
        0 1 2
        2 3 0
        1 ? 3
        """,
        queue=0,
    )
    state = replace(state, tiles_requested=100)  # tiles are asked for, none on the way yet
    new, events = play(state, Judge(7, 2, 1000))
    assert Reshuffled() in events
    assert find_lines(new.board) == []
    assert valid_swaps(new.board) != []
    before_ids = sorted(t.tile_id for row in state.board for t in row)
    assert sorted(t.tile_id for row in new.board for t in row) == before_ids
    again, events_again = play(state, Judge(7, 2, 1000))
    assert again == new and events_again == events
    # Without a generator, the engine draws from the one derived from the state: the same board.
    assert apply(state, Judge(7, 2, 1000)) == (new, events)
    other, _ = apply(state, Judge(7, 2, 1000), np.random.default_rng(99))
    assert other.board != new.board


def test_board_without_any_possible_line_is_reset():
    state = board_state(
        """
        0 1 2
        3 4 5
        6 7 ?
        """,
        queue=12,
        class_names=tuple("abcdefgh"),
        reference_images=(),
    )
    new, events = play(state, Judge(8, 0, 1000))
    assert events == [
        Label(8, "b8", 0, 1000, gold=False, completed_line=False, tempting_classes=()),
        BoardReset(tuple(range(9))),
        Refilled(tuple(range(9, 18))),
        NeedTiles(5),
    ]
    assert picture(new) == "? ? ?\n? ? ?\n? ? ?"
    assert new.tiles_removed_unscored == 9
    assert new.score == 0


def test_no_moves_and_no_images_left_ends_the_level():
    state = board_state(
        """
        0 1 2
        3 4 5
        6 7 ?
        """,
        queue=0,
        class_names=tuple("abcdefgh"),
        reference_images=(),
    )
    state = replace(state, source_exhausted=True)
    new, events = play(state, Judge(8, 0, 1000))
    assert events[-1] == LevelFailed("out_of_images")


# ----------------------------------------------------------------------------- delayed points
def test_delayed_points_are_credited_even_after_the_level():
    state = replace(board_state(LINE_READY), status="won")
    new, events = apply_delayed_points(state, image_id="b2", points=32)
    assert events == [DelayedPoints("b2", 32)]
    assert new.delayed_score == 32
    assert new.status == "won"
    with pytest.raises(InvalidMove):
        apply_delayed_points(state, image_id="b2", points=-1)


def test_honest_label_beats_a_dishonest_three_line_against_confident_consensus():
    scoring = Scoring()
    confident = [1.0, 0.0]  # consensus says class 0
    honest = delayed_points(0, confident, base=scoring.delayed_base)
    dishonest = delayed_points(1, confident, base=scoring.delayed_base) + scoring.line_points(3)
    assert honest > dishonest


# --------------------------------------------------------------------------------- views, events
def test_public_view_never_contains_gold_answers():
    state = board_state(GOLD_READY)
    state = replace(state, queue=(TileSpec("secret", 3),))
    stripped = replace(
        state,
        board=tuple(
            tuple(None if t is None else replace(t, gold_class=None) for t in row)
            for row in state.board
        ),
        queue=(),
    )
    view = public_view(state)
    assert view == public_view(stripped)
    text = json.dumps(view)
    assert "gold" not in text
    assert "secret" not in text
    assert view["board"][0][2] == {"tile_id": 2, "image_id": "b2", "gem": None}


def test_client_events_drop_service_events():
    state = board_state(LINE_READY, queue=0)
    _, events = play(state, Judge(2, 0, 1000))
    kinds = [e["kind"] for e in client_events(events)]
    assert kinds == ["cleared"]
    assert [e.kind for e in events] == ["label", "cleared", "need_tiles"]


# ------------------------------------------------------------------------- determinism, JSON
def random_play(seed: int, steps: int, cfg: LevelConfig | None = None):
    """Drive the engine with a seeded random player; yields (state, events) after each move."""
    import random

    chooser = random.Random(seed)
    cfg = cfg or config(
        rows=5,
        cols=5,
        moves=10_000,
        lives=10_000,
        class_names=("a", "b", "c"),
        reference_images=(),
    )
    gold_every = 4
    counter = [0]

    def supply(n):
        out = []
        for _ in range(n):
            i = counter[0]
            counter[0] += 1
            gold = chooser.randrange(cfg.n_classes) if i % gold_every == 0 else None
            out.append(TileSpec(f"img{i}", gold))
        return tuple(out)

    state, events = new_game(cfg, supply(cfg.rows * cfg.cols + 10), seed=seed)
    yield state, events
    for _ in range(steps):
        if state.status != "playing":
            return
        need = sum(e.count for e in events if isinstance(e, NeedTiles))
        if need:
            move = SupplyTiles(supply(need))
        else:
            unjudged = [t for row in state.board for t in row if t is not None and t.gem is None]
            swaps = valid_swaps(state.board)
            roll = chooser.random()
            if swaps and (roll < 0.3 or not unjudged):
                move = Swap(*chooser.choice(swaps))
            elif unjudged:
                tile = chooser.choice(unjudged)
                ms = chooser.choice([150, 800, 1500, 3000])
                move = Judge(tile.tile_id, chooser.randrange(cfg.n_classes), ms)
            else:
                return
        state, events = apply(state, move, rng_for(state))
        yield state, events


def test_same_seed_same_game():
    first = list(random_play(11, 80))
    second = list(random_play(11, 80))
    assert first == second
    other = list(random_play(12, 80))
    assert first != other


def test_state_json_round_trip_throughout_a_game():
    for state, _ in random_play(5, 60):
        encoded = json.dumps(state.to_dict())
        assert Match3State.from_dict(json.loads(encoded)) == state


def test_random_play_keeps_invariants():
    for state, _ in random_play(3, 150):
        assert_invariants(state)


def assert_invariants(state: Match3State) -> None:
    assert find_lines(state.board) == []
    on_board = sum(t is not None for row in state.board for t in row)
    assert state.next_tile_id == (
        on_board + state.gems_cleared + state.gold_wrong + state.tiles_removed_unscored
    )
    gems = sum(t is not None and t.gem is not None for row in state.board for t in row)
    assert gems == (
        state.judgements - state.gold_wrong - state.gems_cleared - state.tiles_removed_unscored
    )
    ids = [t.tile_id for row in state.board for t in row if t is not None]
    assert len(ids) == len(set(ids))
    assert state.score >= 0
    assert state.moves_used <= state.config.moves
    if state.queue:
        assert all(t is not None for row in state.board for t in row)  # no hole while tiles wait
