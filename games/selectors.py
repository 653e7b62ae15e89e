"""Reads for the games: a player's skill and levels, leaderboards by league, badges."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from annotate.models import Dataset, LabelClass
from games.engine import progression
from games.engine.match3 import LevelConfig
from games.levels import LEVEL_TITLES, dataset_levels, reference_images
from games.models import GameSession, PlayerBadge, PlayerDatasetStats, PlayerStats, ScoreDay
from tessera import db
from tessera.errors import NotPermitted


def player_dataset_progress(
    *, player_id: int, dataset: Dataset
) -> tuple[progression.SkillMetrics, frozenset[str]]:
    """This player's reliability on ``dataset`` and the levels they completed (two queries)."""
    n_classes = max(2, len(dataset.classes.all()))
    # The Dawid–Skene accuracy is the consensus model's own (annotate.PlayerSkill).
    # Read on every level start and refill: SQL written once (tessera.db), not built by the ORM.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT accuracy FROM annotate_playerskill WHERE player_id = %s AND dataset_id = %s"
            " ORDER BY id LIMIT 1",
            [player_id, dataset.pk],
        )
        found = cursor.fetchone()
    ds_accuracy = found[0] if found else None
    row = db.instance(
        PlayerDatasetStats, "player_id = %s AND dataset_id = %s", [player_id, dataset.pk]
    )
    if row is None:
        return progression.SkillMetrics(n_classes=n_classes, ds_accuracy=ds_accuracy), frozenset()
    metrics = progression.SkillMetrics(
        gold_answers=row.gold_answers,
        gold_correct=row.gold_correct,
        labels=row.labels,
        too_fast=row.too_fast,
        n_classes=n_classes,
        ds_accuracy=ds_accuracy,
    )
    return metrics, frozenset(row.completed_levels)


def player_dataset_metrics(*, player_id: int, dataset: Dataset) -> progression.SkillMetrics:
    """What is known about this player's reliability on ``dataset``."""
    return player_dataset_progress(player_id=player_id, dataset=dataset)[0]


def completed_levels(*, player_id: int, dataset: Dataset) -> frozenset[str]:
    row = PlayerDatasetStats.objects.filter(player_id=player_id, dataset=dataset).first()
    return frozenset(row.completed_levels) if row else frozenset()


def dataset_with_classes(where: str, params: list[object]) -> Dataset | None:
    """The dataset matching ``where`` with its classes in order, as ``prefetch_related("classes")``
    gives them: two reads whose SQL is written once (``tessera.db``), for every game request."""
    dataset = db.instance(Dataset, where, params)
    if dataset is not None:
        classes = db.instances(LabelClass, "dataset_id = %s", [dataset.pk], order_by='"order", id')
        db.prefetched(dataset, "classes", classes)
    return dataset


def dataset_for_play(*, slug: str) -> Dataset:
    """An active classification dataset with 2 to 8 classes, or ``NotPermitted``."""
    dataset = dataset_with_classes(
        "slug = %s AND is_active = %s AND task = %s",
        [slug, True, Dataset.Task.CLASSIFICATION.value],
    )
    if dataset is None or not 2 <= len(dataset.classes.all()) <= 8:
        raise NotPermitted("No such game.")
    return dataset


def levels_for_dataset(*, dataset: Dataset) -> tuple[LevelConfig, ...]:
    return dataset_levels(
        class_names=[c.name for c in dataset.classes.all()],
        reference_images=reference_images(dataset=dataset),
    )


@dataclass(frozen=True)
class LevelCard:
    level: LevelConfig
    title: str
    unlocked: bool
    completed: bool
    in_progress: bool
    requirement: str


def _requirement(level: LevelConfig) -> str:
    parts = []
    if level.unlock.requires:
        parts.append("finish " + ", ".join(LEVEL_TITLES.get(r, r) for r in level.unlock.requires))
    if level.unlock.min_gold_answers:
        parts.append(f"answer {level.unlock.min_gold_answers} checks")
    if level.unlock.min_accuracy:
        parts.append(f"with a proven accuracy of {level.unlock.min_accuracy:.0%}")
    if len(parts) > 1 and level.unlock.requires:
        parts[0] += ", then"
    text = " ".join(parts)
    return text[:1].upper() + text[1:]


def level_cards(*, player_id: int, dataset: Dataset) -> list[LevelCard]:
    """Every level of the dataset with whether this player may play it."""
    levels = levels_for_dataset(dataset=dataset)
    metrics = player_dataset_metrics(player_id=player_id, dataset=dataset)
    done = completed_levels(player_id=player_id, dataset=dataset)
    open_ids = set(progression.unlocked_levels(levels, metrics, done))
    playing = set(
        GameSession.objects.filter(
            player_id=player_id, dataset=dataset, status=GameSession.Status.PLAYING
        ).values_list("level_id", flat=True)
    )
    return [
        LevelCard(
            level=lv,
            title=LEVEL_TITLES.get(lv.level_id, lv.level_id),
            unlocked=lv.level_id in open_ids,
            completed=lv.level_id in done,
            in_progress=lv.level_id in playing,
            requirement=_requirement(lv),
        )
        for lv in levels
    ]


PERIODS = ("daily", "weekly", "all-time")


def _period_start(period: str, today: dt.date) -> dt.date | None:
    if period == "daily":
        return today
    if period == "weekly":
        return today - dt.timedelta(days=today.weekday())  # ISO week, Monday first
    return None


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    player_id: int
    name: str
    points: int
    is_me: bool


def leaderboard(
    *, player_id: int, period: str, limit: int = 20
) -> tuple[str, list[LeaderboardRow]]:
    """The player's league and its top ``limit`` players for ``period`` (daily/weekly/all-time).

    Players are compared only with players of the same league (similar measured skill), so a
    newcomer is never ranked against the all-time best.
    """
    if period not in PERIODS:
        raise NotPermitted("Unknown leaderboard period.")
    stats = PlayerStats.objects.filter(player_id=player_id).first()
    league = stats.league if stats else progression.LEAGUES[0]
    rows = ScoreDay.objects.filter(player__game_stats__league=league)
    start = _period_start(period, timezone.now().date())
    if start is not None:
        rows = rows.filter(day__gte=start)
    top = (
        rows.values("player_id", "player__display_name", "player__username")
        .annotate(total=Sum("points"))
        .filter(total__gt=0)
        .order_by("-total", "player_id")[:limit]
    )
    return league, [
        LeaderboardRow(
            rank=rank,
            player_id=r["player_id"],
            name=r["player__display_name"] or r["player__username"],
            points=r["total"],
            is_me=r["player_id"] == player_id,
        )
        for rank, r in enumerate(top, start=1)
    ]


@dataclass(frozen=True)
class BadgeCard:
    badge_id: str
    title: str
    description: str
    earned_at: dt.datetime | None


def badge_cards(*, player_id: int) -> list[BadgeCard]:
    earned = dict(
        PlayerBadge.objects.filter(player_id=player_id).values_list("badge_id", "earned_at")
    )
    return [
        BadgeCard(rule.badge_id, rule.title, rule.description, earned.get(rule.badge_id))
        for rule in progression.BADGES
    ]


def player_stats(*, player_id: int) -> PlayerStats:
    return PlayerStats.objects.filter(player_id=player_id).first() or PlayerStats(
        player_id=player_id
    )
