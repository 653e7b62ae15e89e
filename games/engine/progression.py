"""Pure rules around the match-three game: skill, gold mix, level unlocks, leagues, badges, points.

Everything here is a pure function of plain numbers so the service can call it with what it reads from
the database (gold answers, Dawid-Skene skill) and the rules can be tested exhaustively.

Skill is measured conservatively: the *Wilson lower bound* (95 %) of the player's accuracy on gold
answers, so 2 right answers out of 2 do not count as a proven 100 %. When the consensus engine has a
Dawid-Skene estimate of the player's accuracy, the smaller of the two is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from games.engine.match3 import LevelConfig


@dataclass(frozen=True)
class SkillMetrics:
    """What the service knows about a player's reliability on one dataset.

    Attributes
    ----------
    gold_answers, gold_correct : int
        Answers on gold tiles, and how many were right.
    labels : int
        All accepted judgements (gold and non-gold).
    too_fast : int
        Answers rejected as faster than a human can judge.
    n_classes : int
        Number of classes of the dataset (sets the chance level).
    ds_accuracy : float or None
        Dawid-Skene estimate of the player's accuracy (mean of the confusion-matrix diagonal weighted
        by class prior), when the consensus engine has one.
    """

    gold_answers: int = 0
    gold_correct: int = 0
    labels: int = 0
    too_fast: int = 0
    n_classes: int = 2
    ds_accuracy: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.gold_correct <= self.gold_answers:
            raise ValueError("gold_correct must be between 0 and gold_answers")
        if self.n_classes < 2:
            raise ValueError("n_classes must be at least 2")


def wilson_lower_bound(successes: int, n: int, z: float = 1.96) -> float:
    """Lower end of the Wilson score interval for a binomial proportion (0.0 when ``n == 0``)."""
    if n <= 0:
        return 0.0
    p = successes / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / denom)


def accuracy_estimate(metrics: SkillMetrics) -> float:
    """Conservative accuracy: Wilson lower bound on gold, capped by the Dawid-Skene estimate."""
    estimate = wilson_lower_bound(metrics.gold_correct, metrics.gold_answers)
    if metrics.ds_accuracy is not None:
        estimate = min(estimate, metrics.ds_accuracy)
    return estimate


def reliability(metrics: SkillMetrics, *, target_accuracy: float = 0.9) -> float:
    """Where the conservative accuracy sits between chance (0.0) and ``target_accuracy`` (1.0)."""
    chance = 1.0 / metrics.n_classes
    r = (accuracy_estimate(metrics) - chance) / (target_accuracy - chance)
    return min(1.0, max(0.0, r))


def gold_rate(
    metrics: SkillMetrics,
    *,
    min_rate: float = 0.05,
    max_rate: float = 0.5,
    target_accuracy: float = 0.9,
    max_too_fast_fraction: float = 0.05,
) -> float:
    """Share of gold tiles to mix into this player's next tiles.

    ``rate = max_rate - (max_rate - min_rate) * reliability``: a new player (no gold answers yet) or an
    unreliable one gets ``max_rate`` (half the tiles are checks); a player whose conservative accuracy
    reaches ``target_accuracy`` gets ``min_rate`` (never zero: reliability is monitored forever). A
    player with more than ``max_too_fast_fraction`` of answers rejected as too fast gets ``max_rate``.

    Properties (tested): always in ``[min_rate, max_rate]``; non-increasing as gold accuracy improves
    at a fixed number of answers; at fixed high accuracy, non-increasing as evidence accumulates.
    """
    if not 0.0 <= min_rate <= max_rate <= 1.0:
        raise ValueError("need 0 <= min_rate <= max_rate <= 1")
    answers = metrics.labels + metrics.too_fast
    if answers and metrics.too_fast / answers > max_too_fast_fraction:
        return max_rate
    r = reliability(metrics, target_accuracy=target_accuracy)
    return min(max_rate, max(min_rate, max_rate - (max_rate - min_rate) * r))


def unlocked_levels(
    levels: Sequence[LevelConfig], metrics: SkillMetrics, completed: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """Ids of the levels this player may play, in the given order.

    A level opens when the player has at least ``unlock.min_gold_answers`` gold answers, a conservative
    accuracy of at least ``unlock.min_accuracy``, and has completed every level in
    ``unlock.requires``. A level with the default rule (the tutorial) is always open.
    """
    accuracy = accuracy_estimate(metrics)
    return tuple(
        level.level_id
        for level in levels
        if metrics.gold_answers >= level.unlock.min_gold_answers
        and accuracy >= level.unlock.min_accuracy
        and set(level.unlock.requires) <= completed
    )


#: League names from newcomer to expert; leaderboards are kept per league.
LEAGUES: tuple[str, ...] = ("newcomer", "bronze", "silver", "gold", "diamond")


def league(metrics: SkillMetrics) -> str:
    """League of similar players: newcomers (under 20 gold answers) among themselves, then by
    reliability in equal bands, so a new player never faces the all-time top."""
    if metrics.gold_answers < 20:
        return LEAGUES[0]
    band = min(3, int(reliability(metrics) * 4))
    return LEAGUES[1 + band]


def delayed_points(chosen_class: int, posterior: Sequence[float], *, base: int = 40) -> int:
    """Points for a non-gold label once consensus settled: ``round(base * posterior[chosen])``.

    Paying the consensus probability of the chosen class makes the truthful answer the best bet for
    a player who believes consensus tracks the truth, and it pays partially where experts would
    disagree.

    Parameters
    ----------
    chosen_class : int
        The class the player chose.
    posterior : sequence of float, shape (K,)
        Consensus probability of each class (sums to 1).
    base : int
        Points for a label consensus is certain about (``Scoring.delayed_base``).
    """
    if not 0 <= chosen_class < len(posterior):
        raise ValueError("chosen_class out of range")
    p = float(posterior[chosen_class])
    if not 0.0 <= p <= 1.0:
        raise ValueError("posterior values must be probabilities")
    return round(base * p)


# ----------------------------------------------------------------------------------------- badges
@dataclass(frozen=True)
class PlayerStats:
    """Lifetime counters the service keeps per player (all datasets)."""

    levels_completed: int = 0
    perfect_levels: int = 0
    labels: int = 0
    gold_answers: int = 0
    gold_correct: int = 0
    best_streak: int = 0
    best_cascade: int = 0
    delayed_points: int = 0
    days_played: int = 0


@dataclass(frozen=True)
class BadgeRule:
    badge_id: str
    title: str
    description: str
    earned: Callable[[PlayerStats], bool]


BADGES: tuple[BadgeRule, ...] = (
    BadgeRule("first_level", "First steps", "Complete a level.", lambda s: s.levels_completed >= 1),
    BadgeRule(
        "flawless",
        "Flawless",
        "Complete a level without a mistake.",
        lambda s: s.perfect_levels >= 1,
    ),
    BadgeRule("labels_100", "Helper", "Give 100 labels.", lambda s: s.labels >= 100),
    BadgeRule("labels_1000", "Pillar", "Give 1,000 labels.", lambda s: s.labels >= 1000),
    BadgeRule("streak_10", "On a roll", "Reach a streak of 10.", lambda s: s.best_streak >= 10),
    BadgeRule("streak_25", "Unstoppable", "Reach a streak of 25.", lambda s: s.best_streak >= 25),
    BadgeRule(
        "combo_3", "Chain reaction", "Trigger a triple cascade.", lambda s: s.best_cascade >= 3
    ),
    BadgeRule(
        "sharp_eye",
        "Sharp eye",
        "Answer at least 50 checks with a proven accuracy of 90 %.",
        lambda s: (
            s.gold_answers >= 50 and wilson_lower_bound(s.gold_correct, s.gold_answers) >= 0.9
        ),
    ),
    BadgeRule(
        "consensus_builder",
        "Consensus builder",
        "Earn 1,000 points from labels confirmed by consensus.",
        lambda s: s.delayed_points >= 1000,
    ),
    BadgeRule("regular", "Regular", "Play on 7 different days.", lambda s: s.days_played >= 7),
)


def earned_badges(stats: PlayerStats) -> frozenset[str]:
    """Ids of every badge whose rule ``stats`` satisfies."""
    return frozenset(rule.badge_id for rule in BADGES if rule.earned(stats))


def new_badges(before: PlayerStats, after: PlayerStats) -> tuple[str, ...]:
    """Badges earned by going from ``before`` to ``after``, in :data:`BADGES` order."""
    had = earned_badges(before)
    now = earned_badges(after)
    return tuple(rule.badge_id for rule in BADGES if rule.badge_id in now - had)
