"""Game sessions, what each player was served, lifetime stats, badges and leaderboard points.

The engine state of a session holds the gold answers: it lives only in ``GameSession.state`` and
never leaves the server (clients get ``games.engine.match3.public_view``).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from tessera.models import TimeStampedModel


class GameSession(TimeStampedModel):
    """One player playing one level of one dataset; resumable until it ends."""

    class Status(models.TextChoices):
        PLAYING = "playing", "Playing"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    # The only id a client sees: unguessable, so one player cannot address another's session.
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="game_sessions"
    )
    dataset = models.ForeignKey(
        "annotate.Dataset", on_delete=models.PROTECT, related_name="game_sessions"
    )
    level_id = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLAYING)
    # games.engine.match3.Match3State.to_dict(): includes gold answers, server-side only.
    state = models.JSONField()
    # {tile_id: epoch ms} when each board tile was first sent to the client (response times).
    shown_at = models.JSONField(default=dict)
    score = models.IntegerField(default=0)
    delayed_score = models.IntegerField(default=0)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["player", "dataset", "level_id"],
                condition=Q(status="playing"),
                name="gamesession_one_open_per_level",
            ),
        ]
        indexes = [models.Index(fields=["player", "dataset", "status"])]

    def __str__(self) -> str:
        return f"{self.player_id}/{self.dataset_id}/{self.level_id} ({self.status})"


class ServedImage(models.Model):
    """An image a player was given (queued or shown). Never served to the same player twice."""

    # No single-column indexes on player and session: the (player, image) and (session, image)
    # indexes lead with them. With a player_id index beside the pair, PostgreSQL answered the
    # selector's "served to this player?" lookup from it whenever its statistics thought the
    # player had few rows, reading the player's whole history per candidate (12 ms per level
    # start at 1,500 served images).
    # No foreign-key constraints in the database (db_constraint=False), here and on SessionMove:
    # this ledger gets ~100 rows per level played, and PostgreSQL checked each of their three
    # keys one by one at commit, a fifth of its time on the game's requests (docs/benchmarks.md,
    # 2026-12-07). The rows are written only for a session, player and images the same
    # transaction has just read (the session locked); images, sessions and players are deleted
    # only through the ORM (withdrawal keeps image rows; a player with sessions is protected),
    # which still deletes these rows with them (on_delete=CASCADE).
    player = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="served_images",
        db_index=False,
        db_constraint=False,
    )
    image = models.ForeignKey(
        "annotate.Image", on_delete=models.CASCADE, related_name="served", db_constraint=False
    )
    session = models.ForeignKey(
        GameSession,
        on_delete=models.CASCADE,
        related_name="served",
        db_index=False,
        db_constraint=False,
    )
    served_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["player", "image"], name="servedimage_once_per_player")
        ]
        indexes = [models.Index(fields=["session", "image"])]

    def __str__(self) -> str:
        return f"{self.player_id} ← {self.image_id}"


class SessionMove(models.Model):
    """A move the server applied, by the client's idempotency key: a retry gets this result back."""

    # Indexed through the (session, key) constraint, which leads with it; no constraint in the
    # database, as on ServedImage (20 rows per moves request).
    session = models.ForeignKey(
        GameSession,
        on_delete=models.CASCADE,
        related_name="moves",
        db_index=False,
        db_constraint=False,
    )
    key = models.CharField(max_length=64)
    seq = models.PositiveIntegerField()
    outcome = models.CharField(max_length=10)  # applied | rejected
    result = models.JSONField(default=dict)  # client events or the rejection message
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "key"], name="sessionmove_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.key}"


class PlayerDatasetStats(models.Model):
    """A player's reliability on one dataset: the inputs of progression.SkillMetrics."""

    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dataset_stats"
    )
    dataset = models.ForeignKey(
        "annotate.Dataset", on_delete=models.CASCADE, related_name="player_stats"
    )
    gold_answers = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    labels = models.PositiveIntegerField(default=0)
    too_fast = models.PositiveIntegerField(default=0)
    completed_levels = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["player", "dataset"], name="playerdatasetstats_unique"),
            models.CheckConstraint(
                condition=Q(gold_correct__lte=models.F("gold_answers")),
                name="playerdatasetstats_gold_correct_le_answers",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.player_id}@{self.dataset_id}"


class PlayerStats(TimeStampedModel):
    """Lifetime counters (all datasets): badges, league, bot detection."""

    player = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="game_stats"
    )
    levels_completed = models.PositiveIntegerField(default=0)
    perfect_levels = models.PositiveIntegerField(default=0)
    labels = models.PositiveIntegerField(default=0)
    gold_answers = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    best_streak = models.PositiveIntegerField(default=0)
    best_cascade = models.PositiveIntegerField(default=0)
    delayed_points = models.PositiveIntegerField(default=0)
    days_played = models.PositiveIntegerField(default=0)
    last_played_on = models.DateField(null=True, blank=True)
    # Bot detection: answers faster than a human can judge (stored, never scored).
    too_fast = models.PositiveIntegerField(default=0)
    flagged_as_bot = models.BooleanField(default=False)
    league = models.CharField(max_length=12, default="newcomer", db_index=True)

    def __str__(self) -> str:
        return f"stats of {self.player_id}"


class PlayerBadge(models.Model):
    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="badges"
    )
    badge_id = models.CharField(max_length=40)
    earned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["player", "badge_id"], name="playerbadge_unique")
        ]

    def __str__(self) -> str:
        return f"{self.player_id}:{self.badge_id}"


class ScoreDay(models.Model):
    """Points a player earned on one day (UTC): daily, weekly and all-time leaderboards sum these."""

    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="score_days"
    )
    day = models.DateField()
    points = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["player", "day"], name="scoreday_unique")]
        indexes = [models.Index(fields=["day", "player"])]

    def __str__(self) -> str:
        return f"{self.player_id} {self.day}: {self.points}"


class DelayedAward(models.Model):
    """Points paid for one non-gold label once consensus settled; at most once per annotation."""

    annotation = models.OneToOneField(
        "annotate.Annotation", on_delete=models.CASCADE, related_name="delayed_award"
    )
    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delayed_awards"
    )
    image = models.ForeignKey(
        "annotate.Image", on_delete=models.CASCADE, related_name="delayed_awards"
    )
    points = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.player_id} +{self.points} for {self.image_id}"


from games.contour.models import RaceEntry, RaceRoom, RaceSeat, RaceTicket  # noqa: E402, F401
