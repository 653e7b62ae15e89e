"""Datasets, images and the labels players give them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from tessera.models import TimeStampedModel


class Dataset(TimeStampedModel):
    """A collection of images with one labelling task and its classes."""

    class Task(models.TextChoices):
        CLASSIFICATION = "classification", "Image classification"
        SEGMENTATION = "segmentation", "Structure outlining"

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    task = models.CharField(max_length=20, choices=Task.choices, default=Task.CLASSIFICATION)
    # For segmentation: the structure players outline ("skin lesion").
    target_structure = models.CharField(max_length=80, blank=True)
    modality = models.CharField(max_length=40, blank=True)
    attribution = models.TextField(blank=True, help_text="Citation and licence of the source.")
    licence = models.CharField(max_length=60, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("play_games", "Can play annotation games"),
            ("review_labels", "Can adjudicate disputed labels"),
            ("export_datasets", "Can export consensus datasets"),
            ("manage_datasets", "Can create and configure datasets"),
        ]

    def __str__(self) -> str:
        return self.name


class LabelClass(models.Model):
    """One class of a dataset. Colour AND shape, so no player depends on colour alone."""

    class Shape(models.TextChoices):
        CIRCLE = "circle"
        SQUARE = "square"
        TRIANGLE = "triangle"
        DIAMOND = "diamond"
        STAR = "star"
        HEXAGON = "hexagon"
        CROSS = "cross"
        HEART = "heart"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="classes")
    code = models.CharField(max_length=40)
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    order = models.PositiveSmallIntegerField(default=0)
    colour = models.CharField(max_length=7, default="#888888")
    shape = models.CharField(max_length=10, choices=Shape.choices, default=Shape.CIRCLE)

    class Meta:
        ordering = ["dataset", "order"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "code"], name="labelclass_unique_code"),
            models.UniqueConstraint(fields=["dataset", "order"], name="labelclass_unique_order"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.slug}:{self.code}"


def image_upload_to(instance: Image, filename: str) -> str:
    # Never a donor-supplied name: the public id decides the path.
    return f"images/{instance.dataset_id}/{instance.public_id.hex}{_suffix(filename)}"


def thumb_upload_to(instance: Image, filename: str) -> str:
    return f"thumbs/{instance.dataset_id}/{instance.public_id.hex}{_suffix(filename)}"


def _suffix(filename: str) -> str:
    return "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


class Image(TimeStampedModel):
    """A de-identified image, as stored after intake. Original bytes are never kept."""

    class Status(models.TextChoices):
        ACTIVE = "active", "In play"
        QUARANTINED = "quarantined", "Waiting for review"
        RETIRED = "retired", "Retired (consensus reached)"
        UNUSABLE = "unusable", "Marked unusable"
        WITHDRAWN = "withdrawn", "Withdrawn by donor"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="images")
    donor = models.ForeignKey("consent.Donor", on_delete=models.PROTECT, related_name="images")
    consent = models.ForeignKey("consent.Consent", on_delete=models.PROTECT, related_name="images")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    file = models.FileField(upload_to=image_upload_to, blank=True)
    thumbnail = models.FileField(upload_to=thumb_upload_to, blank=True)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    frames = models.PositiveIntegerField(default=1)
    modality = models.CharField(max_length=16, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    phash = models.CharField(max_length=32, blank=True, db_index=True)
    # Stable reference to the source item (demo loader: "<dataset>:<file>"), for idempotent loads.
    source_ref = models.CharField(max_length=200, blank=True)
    # Expert truth for gold images (from the source dataset's expert labels or a clinician).
    gold_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="gold_images"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "source_ref"],
                condition=~Q(source_ref=""),
                name="image_unique_source_ref",
            ),
        ]
        indexes = [models.Index(fields=["dataset", "status"])]

    def __str__(self) -> str:
        return f"{self.dataset.slug}/{self.public_id}"

    @property
    def is_gold(self) -> bool:
        return self.gold_class_id is not None


class Annotation(models.Model):
    """One assertion a player made about an image. Append-only.

    The client's idempotency key makes a retried submission a no-op instead of a duplicate.
    """

    class Source(models.TextChoices):
        MATCH_THREE = "match3", "Match-three"
        CONTOUR_RACE = "contour", "Contour race"
        REVIEW = "review", "Clinician review"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    label_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations"
    )
    # Contours etc.: polygon vertices in image pixel coordinates.
    geometry = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    idempotency_key = models.CharField(max_length=64)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    # False when the label no longer counts (donor withdrew, player flagged as a bot...).
    is_counted = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["player", "idempotency_key"], name="annotation_unique_idempotency_key"
            ),
            models.CheckConstraint(
                condition=Q(label_class__isnull=False) | Q(geometry__isnull=False),
                name="annotation_has_content",
            ),
        ]
        indexes = [models.Index(fields=["image", "is_counted"])]

    def __str__(self) -> str:
        return f"{self.player_id} → {self.image_id}"
