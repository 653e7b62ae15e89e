import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games.engine.match3 import LevelConfig, UnlockRule
from games.engine.progression import (
    BADGES,
    PlayerStats,
    SkillMetrics,
    accuracy_estimate,
    delayed_points,
    earned_badges,
    gold_rate,
    league,
    new_badges,
    reliability,
    unlocked_levels,
    wilson_lower_bound,
)


def test_wilson_lower_bound_values():
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(2, 2) == pytest.approx(0.3424, abs=1e-4)
    assert wilson_lower_bound(95, 100) == pytest.approx(0.8882, abs=1e-4)
    assert wilson_lower_bound(0, 10) == 0.0


def test_new_player_gets_the_most_gold():
    assert gold_rate(SkillMetrics()) == 0.5


def test_proven_player_gets_the_least_gold():
    proven = SkillMetrics(gold_answers=400, gold_correct=390, labels=2000, n_classes=2)
    assert gold_rate(proven) == pytest.approx(0.05)


def test_unreliable_player_stays_at_the_maximum():
    guesser = SkillMetrics(gold_answers=200, gold_correct=100, labels=500, n_classes=2)
    assert gold_rate(guesser) == 0.5


def test_too_fast_answers_push_gold_to_the_maximum():
    fast = SkillMetrics(gold_answers=400, gold_correct=390, labels=900, too_fast=100, n_classes=2)
    assert gold_rate(fast) == 0.5


def test_dawid_skene_estimate_caps_gold_accuracy():
    metrics = SkillMetrics(gold_answers=400, gold_correct=390, labels=2000, ds_accuracy=0.6)
    assert accuracy_estimate(metrics) == 0.6
    assert gold_rate(metrics) == pytest.approx(0.5 - 0.45 * (0.6 - 0.5) / (0.9 - 0.5))


def test_chance_level_depends_on_class_count():
    # 60 % right is chance-plus for 4 classes, chance-ish for 2.
    two = SkillMetrics(gold_answers=1000, gold_correct=600, n_classes=2)
    four = SkillMetrics(gold_answers=1000, gold_correct=600, n_classes=4)
    assert reliability(four) > reliability(two)


def test_gold_rate_rejects_bad_bounds():
    with pytest.raises(ValueError):
        gold_rate(SkillMetrics(), min_rate=0.6, max_rate=0.5)
    with pytest.raises(ValueError):
        SkillMetrics(gold_answers=1, gold_correct=2)


@settings(max_examples=200, deadline=None)
@given(
    answers=st.integers(0, 2000),
    frac=st.floats(0, 1),
    classes=st.integers(2, 8),
    labels=st.integers(0, 5000),
)
def test_gold_rate_is_bounded(answers, frac, classes, labels):
    correct = int(answers * frac)
    rate = gold_rate(SkillMetrics(answers, correct, labels, 0, classes))
    assert 0.05 <= rate <= 0.5


@settings(max_examples=200, deadline=None)
@given(answers=st.integers(1, 2000), a=st.floats(0, 1), b=st.floats(0, 1))
def test_gold_rate_never_rises_with_accuracy(answers, a, b):
    lo, hi = sorted((int(answers * a), int(answers * b)))
    assert gold_rate(SkillMetrics(answers, hi)) <= gold_rate(SkillMetrics(answers, lo))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 500), k=st.integers(1, 20))
def test_gold_rate_never_rises_with_evidence_at_high_accuracy(n, k):
    # 95 % accuracy observed on n and on k*n answers
    small = SkillMetrics(20 * n, 19 * n)
    large = SkillMetrics(20 * n * k, 19 * n * k)
    assert gold_rate(large) <= gold_rate(small)


LEVELS = (
    LevelConfig(level_id="tutorial", class_names=("a", "b")),
    LevelConfig(level_id="easy", class_names=("a", "b"), unlock=UnlockRule(requires=("tutorial",))),
    LevelConfig(
        level_id="hard",
        class_names=("a", "b"),
        unlock=UnlockRule(min_gold_answers=50, min_accuracy=0.8, requires=("easy",)),
    ),
)


def test_only_the_tutorial_is_open_at_first():
    assert unlocked_levels(LEVELS, SkillMetrics()) == ("tutorial",)


def test_completing_levels_and_proving_skill_unlocks_more():
    metrics = SkillMetrics(gold_answers=100, gold_correct=95)
    assert unlocked_levels(LEVELS, metrics, frozenset({"tutorial"})) == ("tutorial", "easy")
    assert unlocked_levels(LEVELS, metrics, frozenset({"tutorial", "easy"})) == LEVELS_IDS


LEVELS_IDS = ("tutorial", "easy", "hard")


def test_lucky_newcomer_does_not_unlock_the_hard_level():
    lucky = SkillMetrics(gold_answers=50, gold_correct=42)  # 84 %, lower bound ~0.71
    assert "hard" not in unlocked_levels(LEVELS, lucky, frozenset({"tutorial", "easy"}))


@pytest.mark.parametrize(
    ("answers", "correct", "expected"),
    [(0, 0, "newcomer"), (19, 19, "newcomer"), (100, 50, "bronze"), (400, 390, "diamond")],
)
def test_leagues(answers, correct, expected):
    assert league(SkillMetrics(answers, correct)) == expected


def test_delayed_points_pay_consensus_probability():
    assert delayed_points(1, [0.2, 0.8]) == 32
    assert delayed_points(0, [0.2, 0.8], base=100) == 20
    with pytest.raises(ValueError):
        delayed_points(2, [0.2, 0.8])
    with pytest.raises(ValueError):
        delayed_points(0, [1.5, -0.5])


def test_badges_from_stats():
    assert earned_badges(PlayerStats()) == frozenset()
    stats = PlayerStats(levels_completed=1, labels=150, best_streak=12, best_cascade=3)
    assert earned_badges(stats) == {"first_level", "labels_100", "streak_10", "combo_3"}
    expert = PlayerStats(gold_answers=60, gold_correct=60)
    assert "sharp_eye" in earned_badges(expert)
    assert "sharp_eye" not in earned_badges(PlayerStats(gold_answers=60, gold_correct=54))


def test_new_badges_lists_only_fresh_ones_in_order():
    before = PlayerStats(levels_completed=1, labels=99)
    after = PlayerStats(levels_completed=2, labels=100, best_streak=25, days_played=7)
    assert new_badges(before, after) == ("labels_100", "streak_10", "streak_25", "regular")


def test_badge_ids_are_unique():
    ids = [b.badge_id for b in BADGES]
    assert len(ids) == len(set(ids))
