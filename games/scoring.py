"""Points, counters, badges and leagues after moves, and delayed points when consensus settles."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from annotate.models import Annotation, Image
from games.engine import match3, progression
from games.models import (
    DelayedAward,
    GameSession,
    PlayerBadge,
    PlayerDatasetStats,
    PlayerStats,
    ScoreDay,
    ServedImage,
)
from tessera import db
from tessera.errors import ApplicationError
from tessera.realtime import broadcast_on_commit, user_group

logger = logging.getLogger(__name__)

# Bot detection: flag a player once this many answers came faster than a human can judge and
# they are more than this share of all their answers. Flagged players' labels are stored uncounted.
BOT_MIN_TOO_FAST = 20
BOT_TOO_FAST_SHARE = 0.2


@dataclass(frozen=True)
class MoveTally:
    """What one request's moves added to a player's counters."""

    labels: int = 0
    gold_answers: int = 0
    gold_correct: int = 0
    too_fast: int = 0
    points: int = 0
    best_streak: int = 0
    best_cascade: int = 0
    level_won: bool = False
    level_perfect: bool = False
    level_id: str = ""


def _as_progress(stats: PlayerStats) -> progression.PlayerStats:
    return progression.PlayerStats(
        levels_completed=stats.levels_completed,
        perfect_levels=stats.perfect_levels,
        labels=stats.labels,
        gold_answers=stats.gold_answers,
        gold_correct=stats.gold_correct,
        best_streak=stats.best_streak,
        best_cascade=stats.best_cascade,
        delayed_points=stats.delayed_points,
        days_played=stats.days_played,
    )


def _award_badges(stats: PlayerStats, before: progression.PlayerStats) -> list[str]:
    new = progression.new_badges(before, _as_progress(stats))
    if new:
        PlayerBadge.objects.bulk_create(
            [PlayerBadge(player_id=stats.player_id, badge_id=b) for b in new],
            ignore_conflicts=True,
        )
    return list(new)


def _add_day_points(player_id: int, day: dt.date, points: int) -> bool:
    """Add ``points`` to the player's row of ``day``; False when there is none yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE games_scoreday SET points = points + %s WHERE player_id = %s AND day = %s",
            [points, player_id, connection.ops.adapt_datefield_value(day)],
        )
        return cursor.rowcount > 0


def _add_points(player_id: int, points: int) -> None:
    if not points:
        return
    today = timezone.now().date()
    if not _add_day_points(player_id, today, points):  # the day's first points: one more query
        ScoreDay.objects.get_or_create(player_id=player_id, day=today)
        _add_day_points(player_id, today, points)


# What a moves request changes in PlayerStats (delayed points are paid elsewhere).
_STATS_FIELDS = (
    "days_played",
    "last_played_on",
    "labels",
    "gold_answers",
    "gold_correct",
    "too_fast",
    "best_streak",
    "best_cascade",
    "levels_completed",
    "perfect_levels",
    "flagged_as_bot",
    "league",
    "updated_at",
)


def _lock_or_create(model, **keys):  # type: ignore[no-untyped-def]
    """The row for `keys`, locked until commit; created first when missing (race-safe).

    One query when the row exists, which is every request but a player's first.
    """
    row = model.objects.select_for_update().filter(**keys).first()
    if row is None:
        model.objects.get_or_create(**keys)
        row = model.objects.select_for_update().get(**keys)
    return row


def player_stats_locked(player_id: int) -> PlayerStats:
    """The player's counters, locked until commit (created on their first moves). Every moves
    request reads this row: its SQL is written once (``tessera.db``)."""
    stats = db.instance(PlayerStats, "player_id = %s", [player_id], lock=True)
    return stats if stats is not None else _lock_or_create(PlayerStats, player_id=player_id)


_DATASET_COUNTS_SQL = (
    "UPDATE games_playerdatasetstats SET gold_answers = gold_answers + %s,"
    " gold_correct = gold_correct + %s, labels = labels + %s, too_fast = too_fast + %s"
    " WHERE player_id = %s AND dataset_id = %s"
)


def _add_dataset_counts(player_id: int, dataset_id: int, tally: MoveTally) -> bool:
    """The increments of ``_record_dataset_moves`` as one statement written once; False when
    the player has no row for the dataset yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            _DATASET_COUNTS_SQL,
            [
                tally.gold_answers,
                tally.gold_correct,
                tally.labels,
                tally.too_fast,
                player_id,
                dataset_id,
            ],
        )
        return cursor.rowcount > 0


def _record_dataset_moves(player_id: int, dataset_id: int, tally: MoveTally) -> None:
    """Add the request's answers to the player's skill inputs on the dataset.

    One UPDATE with the increments in the common case; the row is created first on the player's
    first answers there, and read (locked) only when the request won a level, to add it to
    ``completed_levels``.
    """
    if not _add_dataset_counts(player_id, dataset_id, tally):
        _lock_or_create(PlayerDatasetStats, player_id=player_id, dataset_id=dataset_id)
        _add_dataset_counts(player_id, dataset_id, tally)
    if tally.level_won:
        row = PlayerDatasetStats.objects.filter(player_id=player_id, dataset_id=dataset_id)
        ds = row.select_for_update().get()
        if tally.level_id not in ds.completed_levels:
            ds.completed_levels = [*ds.completed_levels, tally.level_id]
            ds.save(update_fields=["completed_levels"])


def stats_record_moves(
    *, player_id: int, dataset_id: int, tally: MoveTally, stats: PlayerStats | None = None
) -> list[str]:
    """Add one request's moves to the player's counters; returns newly earned badge ids.

    Call inside the transaction that stored the moves, with the player's ``stats`` row if the
    caller locked it already (``player_stats_locked``; it is locked here otherwise). Updates
    the per-dataset skill inputs, the lifetime counters (badges, league, bot flag) and today's
    leaderboard points.
    """
    if stats is None:
        stats = player_stats_locked(player_id)
    _record_dataset_moves(player_id, dataset_id, tally)
    before = _as_progress(stats)
    today = timezone.now().date()
    if stats.last_played_on != today:
        stats.days_played += 1
        stats.last_played_on = today
    stats.labels += tally.labels
    stats.gold_answers += tally.gold_answers
    stats.gold_correct += tally.gold_correct
    stats.too_fast += tally.too_fast
    stats.best_streak = max(stats.best_streak, tally.best_streak)
    stats.best_cascade = max(stats.best_cascade, tally.best_cascade)
    stats.levels_completed += int(tally.level_won)
    stats.perfect_levels += int(tally.level_perfect)
    answers = stats.labels + stats.too_fast
    if (
        not stats.flagged_as_bot
        and stats.too_fast >= BOT_MIN_TOO_FAST
        and stats.too_fast > BOT_TOO_FAST_SHARE * answers
    ):
        stats.flagged_as_bot = True
        logger.warning(
            "player %s flagged: %s of %s answers too fast", player_id, stats.too_fast, answers
        )
    stats.league = progression.league(
        progression.SkillMetrics(gold_answers=stats.gold_answers, gold_correct=stats.gold_correct)
    )
    db.update_fields(stats, _STATS_FIELDS)
    _add_points(player_id, tally.points)
    return _award_badges(stats, before)


def delayed_points_award(
    *,
    image_id: int,
    posterior: Sequence[float],
    consensus_label: str = "",
    newly_gold: bool = False,
) -> dict[int, int]:
    """Pay the players of a non-gold image once consensus settled on it; notify each of them.

    The consensus task calls this with the image's posterior (one probability per class, in class
    order). Each counted match-three label not yet paid earns
    ``progression.delayed_points(chosen, posterior)``; a label is paid at most once (one
    ``DelayedAward`` per annotation, under a lock on the image). Each paid player gets a toast
    through their notification socket after commit.

    Parameters
    ----------
    image_id : int
        The image (database id).
    posterior : sequence of float, shape (K,)
        Consensus probability of each of the dataset's K classes, in class order.
    consensus_label : str
        Optional name of the consensus class, for the notification text.
    newly_gold : bool
        The image has just become gold by a clinician's decision: its earlier labels were not
        scored as gold when they were given, so they are paid now like any settled label.

    Returns
    -------
    dict of int to int
        Points paid now, per player id (empty when nothing was due).
    """
    with transaction.atomic():
        image = (
            Image.objects.select_for_update().select_related("dataset").filter(pk=image_id).first()
        )
        if image is None:
            raise ApplicationError("No such image.")
        class_ids = list(image.dataset.classes.order_by("order").values_list("pk", flat=True))
        if len(posterior) != len(class_ids):
            raise ApplicationError(
                f"The posterior needs {len(class_ids)} probabilities, one per class."
            )
        if abs(sum(posterior) - 1.0) > 1e-6:
            raise ApplicationError("The posterior must sum to 1.")
        if image.gold_class_id is not None and not newly_gold:
            return {}  # gold labels were scored when they were given
        index_of = {pk: k for k, pk in enumerate(class_ids)}
        base = match3.Scoring().delayed_base
        due = list(
            Annotation.objects.filter(
                image_id=image_id,
                source=Annotation.Source.MATCH_THREE,
                is_counted=True,
                label_class__isnull=False,
                delayed_award__isnull=True,
            ).values_list("pk", "player_id", "label_class_id")
        )
        awards = [
            DelayedAward(
                annotation_id=pk,
                player_id=player_id,
                image_id=image_id,
                points=progression.delayed_points(index_of[cls], posterior, base=base),
            )
            for pk, player_id, cls in due
        ]
        DelayedAward.objects.bulk_create(awards)
        paid: dict[int, int] = defaultdict(int)
        for award in awards:
            paid[award.player_id] += award.points
        sessions = dict(
            ServedImage.objects.filter(image_id=image_id, player_id__in=list(paid)).values_list(
                "player_id", "session_id"
            )
        )
        for player_id, points in paid.items():
            _credit_player(player_id, points, sessions.get(player_id), str(image.public_id))
            if points:
                label = f" ({consensus_label})" if consensus_label else ""
                broadcast_on_commit(
                    user_group(player_id),
                    "notify",
                    {
                        "kind": "delayed_points",
                        "text": f"+{points} points: the crowd agreed on an image you labelled{label}.",
                        "points": points,
                        "image": str(image.public_id),
                    },
                )
    logger.info("delayed points for image %s: %s", image_id, dict(paid))
    return dict(paid)


def _credit_player(player_id: int, points: int, session_id: int | None, public_id: str) -> None:
    stats = player_stats_locked(player_id)
    before = _as_progress(stats)
    stats.delayed_points += points
    stats.save(update_fields=["delayed_points", "updated_at"])
    _add_points(player_id, points)
    _award_badges(stats, before)
    if session_id is None:
        return
    session = GameSession.objects.select_for_update().get(pk=session_id)
    state = match3.Match3State.from_dict(session.state)
    state, _ = match3.apply_delayed_points(state, image_id=public_id, points=points)
    session.state = state.to_dict()
    session.delayed_score = state.delayed_score
    session.save(update_fields=["state", "delayed_score", "updated_at"])
