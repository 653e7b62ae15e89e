"""Contour-race rooms, seats, the lobby queue and per-round results.

The live room state is the engine's :class:`~games.engine.contour_race.RoomState` stored as JSON in
``RaceRoom.state`` and changed one move at a time under a row lock, so every ASGI process (and the
Celery sweep) sees the same room. It holds the contours drawn this round: it never leaves the server
except through ``contour_race.view_for``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from tessera.models import TimeStampedModel


class RaceRoom(TimeStampedModel):
    """One room of 2–8 participants (players and ghosts) racing on one dataset."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    # The only id a client sees.
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey(
        "annotate.Dataset", on_delete=models.PROTECT, related_name="race_rooms"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    # games.engine.contour_race.RoomState.to_dict(): hidden contours included, server-side only.
    state = models.JSONField()
    # Display names by engine participant id (players and ghosts), for the broadcasts.
    names = models.JSONField(default=dict)
    # The current round's image (database id) and what the page shows besides the participants.
    round_meta = models.JSONField(default=dict)
    # Server epoch ms of the next time-driven change (contour_race.next_wakeup); the sweep ticks
    # rooms whose time has come when no consumer did.
    wake_at = models.BigIntegerField(null=True, blank=True)
    # Seeds the image and ghost choice of each round (with the round number): replayable.
    seed = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["status", "wake_at"])]

    def __str__(self) -> str:
        return f"race {self.token} ({self.status})"


class RaceSeat(models.Model):
    """A player's place in a room: the access rule of the room socket."""

    room = models.ForeignKey(RaceRoom, on_delete=models.CASCADE, related_name="seats")
    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="race_seats"
    )
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "player"], name="raceseat_once_per_room")
        ]
        indexes = [models.Index(fields=["player", "room"])]

    def __str__(self) -> str:
        return f"{self.player_id} in {self.room_id}"


class RaceTicket(models.Model):
    """A player waiting in the lobby for room-mates on one dataset (one ticket per player)."""

    player = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="race_ticket"
    )
    dataset = models.ForeignKey(
        "annotate.Dataset", on_delete=models.CASCADE, related_name="race_tickets"
    )
    skill = models.FloatField()
    waiting_since = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["dataset", "waiting_since"])]

    def __str__(self) -> str:
        return f"{self.player_id} waits for {self.dataset_id}"


class RaceEntry(models.Model):
    """One player's contour in one round: the stored annotation, its timing and its score.

    Timings (``started_ms``: first stroke, ``elapsed_ms``: submission, both from the start of the
    drawing phase) are what a ghost replays when a later player races this image alone.
    """

    class Reference(models.TextChoices):
        NONE = "", "Not scored yet"
        GOLD = "gold", "Gold mask"
        CONSENSUS = "consensus", "Leave-one-out STAPLE consensus"

    room = models.ForeignKey(RaceRoom, on_delete=models.CASCADE, related_name="entries")
    round_no = models.PositiveIntegerField()
    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="race_entries"
    )
    image = models.ForeignKey(
        "annotate.Image", on_delete=models.CASCADE, related_name="race_entries"
    )
    annotation = models.OneToOneField(
        "annotate.Annotation", on_delete=models.CASCADE, related_name="race_entry"
    )
    started_ms = models.PositiveIntegerField()
    elapsed_ms = models.PositiveIntegerField()
    dice = models.FloatField(null=True, blank=True)
    score = models.IntegerField(null=True, blank=True)
    reference = models.CharField(
        max_length=10, choices=Reference.choices, default=Reference.NONE, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["room", "round_no", "player"], name="raceentry_once_per_round"
            ),
            models.CheckConstraint(
                condition=Q(dice__isnull=True) | (Q(dice__gte=0) & Q(dice__lte=1)),
                name="raceentry_dice_range",
            ),
            models.CheckConstraint(
                condition=Q(started_ms__lte=models.F("elapsed_ms")),
                name="raceentry_started_before_submitted",
            ),
        ]
        indexes = [models.Index(fields=["image", "player"]), models.Index(fields=["player", "-id"])]

    def __str__(self) -> str:
        return f"{self.player_id} round {self.round_no} of {self.room_id}: {self.score}"
