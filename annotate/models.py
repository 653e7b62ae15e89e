"""Datasets, images and the labels players give them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from tessera.models import TimeStampedModel


class ConsensusMethod(models.TextChoices):
    DAWID_SKENE = "dawid-skene", "Dawid–Skene (per-player confusion matrices)"
    ONE_COIN = "one-coin", "One-coin Dawid–Skene (sparse data)"
    MAJORITY = "majority", "Majority vote"


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

    # Consensus and retirement, per dataset.
    consensus_method = models.CharField(
        max_length=16, choices=ConsensusMethod.choices, default=ConsensusMethod.DAWID_SKENE
    )
    retire_confidence = models.FloatField(
        default=0.95, help_text="Retire an image when its consensus confidence reaches this..."
    )
    retire_min_labels = models.PositiveSmallIntegerField(
        default=3, help_text="...and it has at least this many labels."
    )
    max_labels = models.PositiveSmallIntegerField(
        default=12,
        help_text="Stop serving an image after this many labels; uncertain ones go to review.",
    )
    consensus_every = models.PositiveSmallIntegerField(
        default=20, help_text="Update consensus after this many new labels."
    )
    # STAPLE: retire a contour image when the mean rater agreement (Dice to consensus) reaches this.
    retire_mask_agreement = models.FloatField(default=0.85)

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
    # Indexed by (player, image) below, not on its own: the selector asks "has this player
    # labelled this image?" per candidate, and a player-only index let PostgreSQL answer that
    # by reading the player's every label whenever its statistics underestimated the player.
    player = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="annotations",
        db_index=False,
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
        indexes = [
            models.Index(fields=["image", "is_counted"]),
            models.Index(fields=["player", "image"], name="annotation_player_image_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.player_id} → {self.image_id}"


class ConsensusRun(models.Model):
    """One aggregation over a dataset: the provenance exports cite (method, parameters, fit)."""

    class Kind(models.TextChoices):
        FULL = "full", "Full refit"
        INCREMENTAL = "incremental", "Incremental update"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="consensus_runs")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    method = models.CharField(max_length=16, choices=ConsensusMethod.choices)
    parameters = models.JSONField(default=dict)
    n_answers = models.PositiveIntegerField(default=0)
    n_images = models.PositiveIntegerField(default=0)
    n_players = models.PositiveIntegerField(default=0)
    n_iter = models.PositiveIntegerField(default=0)
    converged = models.BooleanField(default=True)
    log_likelihood = models.FloatField(null=True, blank=True)
    n_retired = models.PositiveIntegerField(default=0)
    n_review_opened = models.PositiveIntegerField(default=0)
    # Images this run retired with a confident consensus: their players' delayed points are due.
    settled_image_ids = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.dataset.slug} {self.kind} {self.method} #{self.pk}"


class Consensus(models.Model):
    """The crowd's current answer for one image (classification datasets)."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="consensus")
    label_class = models.ForeignKey(LabelClass, on_delete=models.PROTECT, related_name="+")
    # {class code: probability}, every class of the dataset.
    posterior = models.JSONField()
    confidence = models.FloatField()
    n_labels = models.PositiveIntegerField()
    n_players = models.PositiveIntegerField()
    run = models.ForeignKey(ConsensusRun, on_delete=models.SET_NULL, null=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1),
                name="consensus_confidence_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.image_id}: {self.label_class_id} ({self.confidence:.2f})"


class PlayerSkill(models.Model):
    """A player's skill on one dataset, read off the consensus model (never hand-set)."""

    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skills"
    )
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="player_skills")
    # confusion[c][l] = P(answer l | true class c), classes in dataset order.
    confusion = models.JSONField(default=list)
    accuracy = models.FloatField(default=0)
    balanced_accuracy = models.FloatField(default=0)
    spammer_score = models.FloatField(default=0)
    information_bits = models.FloatField(default=0)
    adversarial_probability = models.FloatField(default=0)
    n_labels = models.PositiveIntegerField(default=0)
    n_gold = models.PositiveIntegerField(default=0)
    n_gold_correct = models.PositiveIntegerField(default=0)
    n_too_fast = models.PositiveIntegerField(default=0)
    is_flagged = models.BooleanField(default=False)
    flag_reasons = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["player", "dataset"], name="playerskill_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.player_id}@{self.dataset_id}: {self.accuracy:.2f}"

    @property
    def gold_accuracy(self) -> float | None:
        return self.n_gold_correct / self.n_gold if self.n_gold else None


def mask_upload_to(instance: ConsensusMask, filename: str) -> str:
    return f"consensus/{instance.image.dataset_id}/{instance.image.public_id.hex}-{filename}"


class ConsensusMask(models.Model):
    """STAPLE consensus of the contours drawn on one image."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="consensus_mask")
    # 16-bit PNG of P(foreground) * 65535, and the 0/255 mask at the 0.5 threshold.
    probability = models.FileField(upload_to=mask_upload_to)
    mask = models.FileField(upload_to=mask_upload_to)
    n_contours = models.PositiveIntegerField()
    n_players = models.PositiveIntegerField()
    mean_agreement = models.FloatField(help_text="Mean Dice of the contours to the consensus mask.")
    # {player id: {"sensitivity": s, "specificity": p}}
    rater_quality = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"mask {self.image_id} ({self.n_contours} contours)"


class ReviewItem(TimeStampedModel):
    """An image that needs a clinician, in the prioritised review queue.

    One clinician at a time holds an item (`assigned_to` until `claim_expires_at`). A decision at
    stage `first` settles it, unless the clinician escalates: a second, different clinician then
    decides, and when the two disagree an adjudicator (admin, or a clinician holding
    `annotate.adjudicate_reviews`) settles it at stage `adjudication`.
    """

    class Reason(models.TextChoices):
        UNCERTAIN = "uncertain", "Consensus still uncertain at the label limit"
        DISAGREEMENT = "disagreement", "Crowd and model disagree"
        QUARANTINE = "quarantine", "Intake quarantine"
        REPORTED = "reported", "Reported by players"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    class Stage(models.TextChoices):
        FIRST = "first", "First review"
        SECOND = "second", "Second opinion"
        ADJUDICATION = "adjudication", "Adjudication"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="review_items")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    priority = models.FloatField(default=0, help_text="Higher first.")
    details = models.JSONField(default=dict, blank=True)
    stage = models.CharField(max_length=12, choices=Stage.choices, default=Stage.FIRST)
    # The clinician working on the item, until the claim expires.
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="review_claims",
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The final decision: {"action", "label", "decision_id", "stage"}.
    outcome = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-priority", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "reason"],
                condition=Q(status="open"),
                name="reviewitem_one_open_per_reason",
            ),
            models.CheckConstraint(
                condition=Q(assigned_to__isnull=True, claim_expires_at__isnull=True)
                | Q(assigned_to__isnull=False, claim_expires_at__isnull=False),
                name="reviewitem_claim_has_expiry",
            ),
            models.CheckConstraint(
                condition=~Q(status="resolved") | Q(resolved_at__isnull=False),
                name="reviewitem_resolved_has_time",
            ),
        ]
        indexes = [models.Index(fields=["status", "-priority"])]
        permissions = [
            ("adjudicate_reviews", "Can adjudicate when two clinicians disagree"),
        ]

    def __str__(self) -> str:
        return f"{self.reason} {self.image_id} ({self.status})"


class ConsensusModelState(models.Model):
    """The fitted incremental Dawid–Skene state of a dataset, so new labels update it cheaply.

    `state` is an `np.savez` archive (see `annotate.consensus.state_dump`); `watermark` is the
    last annotation id folded in. A full refit rebuilds it.
    """

    dataset = models.OneToOneField(
        Dataset, on_delete=models.CASCADE, related_name="consensus_state"
    )
    state = models.BinaryField()
    watermark = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"consensus state of {self.dataset_id} (up to annotation {self.watermark})"


class ReviewDecision(models.Model):
    """One clinician's decision on a review item at one stage. Append-only, audited."""

    class Action(models.TextChoices):
        CONFIRM = "confirm", "Confirm the consensus"
        RELABEL = "relabel", "Choose another label"
        CONTOUR = "contour", "Edit the consensus contour"
        RELEASE = "release", "Image is fine: back into play"
        UNUSABLE = "unusable", "Mark the image unusable"
        ESCALATE = "escalate", "Ask a second clinician"

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="decisions")
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_decisions"
    )
    stage = models.CharField(max_length=12, choices=ReviewItem.Stage.choices)
    action = models.CharField(max_length=10, choices=Action.choices)
    # The class this decision makes gold (confirm resolves to the consensus class), or, for an
    # escalation, the class the first clinician proposes (optional).
    label_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Contour decisions (and proposals): {"type": "polygon", "points": [[x, y], ...]}.
    geometry = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "stage"], name="reviewdecision_one_per_stage"),
            # Independent opinions: one clinician decides at most once per item.
            models.UniqueConstraint(
                fields=["item", "clinician"], name="reviewdecision_one_per_clinician"
            ),
            models.CheckConstraint(
                condition=~Q(action="relabel") | Q(label_class__isnull=False),
                name="reviewdecision_relabel_has_class",
            ),
            models.CheckConstraint(
                condition=~Q(action="contour") | Q(geometry__isnull=False),
                name="reviewdecision_contour_has_geometry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} {self.stage}: {self.action}"


def gold_mask_upload_to(instance: GoldMask, filename: str) -> str:
    return f"gold/{instance.image.dataset_id}/{instance.image.public_id.hex}-{filename}"


class GoldMask(TimeStampedModel):
    """Expert truth for a segmentation image: the source dataset's mask or a clinician's contour."""

    class Source(models.TextChoices):
        DATASET = "dataset", "Expert mask shipped with the source dataset"
        CLINICIAN = "clinician", "Clinician decision in review"

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="gold_mask")
    # 0/255 PNG at image resolution.
    mask = models.FileField(upload_to=gold_mask_upload_to)
    # Outline(s) in image pixel coordinates: [[[x, y], ...], ...] (from ml.raster.mask_to_polygons).
    polygons = models.JSONField(default=list)
    source = models.CharField(max_length=10, choices=Source.choices)
    decided_by_id = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"gold mask {self.image_id} ({self.source})"


def export_upload_to(instance: Export, filename: str) -> str:
    return f"exports/{instance.dataset_id}/v{instance.version}-{uuid.uuid4().hex}.zip"


class Export(TimeStampedModel):
    """A versioned, immutable snapshot of a dataset's consensus for a researcher.

    Built once by `annotate.export.export_build`; once `ready` its file and checksum never
    change. A donor's withdrawal after the build marks it (`withdrawn_at`, `n_withdrawn`, and
    the affected `ExportItem`s); a new snapshot leaves those images out.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Queued"
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Format(models.TextChoices):
        CSV = "csv", "labels.csv"
        COCO = "coco", "COCO JSON"
        ALL = "all", "labels.csv and COCO JSON"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="exports")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.FloatField(default=0)
    format = models.CharField(max_length=4, choices=Format.choices, default=Format.ALL)
    # {"classes": [codes], "min_confidence": float, "min_labels": int, "gold_only": bool}
    filters = models.JSONField(default=dict, blank=True)
    # Null when made with `manage.py export_dataset`.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="exports",
    )
    file = models.FileField(upload_to=export_upload_to, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    n_withdrawn = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="export_unique_version"),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="export_progress_range"
            ),
            models.CheckConstraint(
                condition=~Q(status="ready") | (~Q(sha256="") & ~Q(file="")),
                name="export_ready_has_file",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.slug} v{self.version} ({self.status})"


class ExportItem(models.Model):
    """One image in an export, so a later withdrawal can find the snapshots that hold it."""

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(
        Image, null=True, on_delete=models.SET_NULL, related_name="export_items"
    )
    public_id = models.UUIDField()
    label = models.CharField(max_length=40, blank=True)
    source = models.CharField(max_length=10)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["export", "public_id"], name="exportitem_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.export_id}: {self.public_id}"


def model_upload_to(instance: ModelVersion, filename: str) -> str:
    return f"models/{instance.dataset_id}/v{instance.version}-{filename}"


class ModelVersion(models.Model):
    """One trained classifier of a dataset, with the metrics it earned on held-out gold.

    Versions are immutable once ready; a new training warm-starts from the latest ready one.
    """

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="model_versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    file = models.FileField(upload_to=model_upload_to, blank=True)
    # Consensus labels the model learnt from (the x axis of the learning curve).
    n_train = models.PositiveIntegerField(default=0)
    n_labels = models.PositiveIntegerField(
        default=0, help_text="Crowd labels behind that consensus."
    )
    # {"gold_accuracy", "ece", "nll", "n_gold_test", "n_gold_calibration", "temperature", ...}
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dataset", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="modelversion_unique"),
            # One training at a time per dataset.
            models.UniqueConstraint(
                fields=["dataset"], condition=Q(status="training"), name="modelversion_one_training"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.slug} model v{self.version} ({self.status})"


class ImagePriority(models.Model):
    """Active-learning priority of an image and the model's opinion on it.

    The next-images selector orders by `priority`; clinicians see `model_posterior` in review.
    Players never see the model's opinion (no anchoring).
    """

    image = models.OneToOneField(Image, on_delete=models.CASCADE)
    # Denormalised from the image so the selector reads a dataset's top priorities off one index.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    priority = models.FloatField()
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # {class code: probability}, calibrated.
    model_posterior = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["dataset", "-priority", "image"], name="imagepriority_rank_idx")
        ]

    def __str__(self) -> str:
        return f"priority {self.image_id}: {self.priority:.3f}"


def qc_model_upload_to(instance: QcModelVersion, filename: str) -> str:
    return f"qc/{instance.dataset_id}/v{instance.version}-{filename}"


class QcModelVersion(models.Model):
    """One trained intake-QC detector of a dataset (``ml.qc``): weights, thresholds, metrics.

    `enabled` and `thresholds` are what ``ml.qc`` calibration decided on the dataset's own
    held-out images (e.g. flip off where the anatomy is symmetric); scoring uses the latest ready
    version. Immutable once ready.
    """

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="qc_models")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    file = models.FileField(upload_to=qc_model_upload_to, blank=True)
    # Detector name ("rotation", "flip", "inversion", "ood") -> on/off and decision threshold.
    enabled = models.JSONField(default=dict, blank=True)
    thresholds = models.JSONField(default=dict, blank=True)
    target_fpr = models.FloatField(default=0.01)
    n_images = models.PositiveIntegerField(default=0, help_text="Accepted images trained on.")
    n_excluded = models.PositiveIntegerField(
        default=0, help_text="Images left out: flagged, reported or confirmed unusable."
    )
    # {"validation_auc": {...}, "n_train", "n_calibration", "train_seconds", "known_bad": {...}}
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dataset", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="qcmodel_unique"),
            models.UniqueConstraint(
                fields=["dataset"], condition=Q(status="training"), name="qcmodel_one_training"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.slug} QC v{self.version} ({self.status})"


class ImageQc(TimeStampedModel):
    """The QC scores of one image and where its review stands.

    A flagged image waits (`pending`) in quarantine with a suggested fix; nothing is altered
    until a reviewer decides: `fixed` (the fix was applied to the stored pixels), `kept` (a false
    alarm: back into play as it is) or `unusable`.
    """

    class State(models.TextChoices):
        CLEAR = "clear", "Passed"
        PENDING = "pending", "Flagged, waiting for review"
        FIXED = "fixed", "Fix applied after review"
        KEPT = "kept", "Kept as it is after review"
        UNUSABLE = "unusable", "Marked unusable after review"

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="qc")
    # Denormalised so a dataset's flagged images come off one index.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    qc_model = models.ForeignKey(
        QcModelVersion, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    p_rotated = models.FloatField(null=True, blank=True)
    rotation_deg_cw = models.PositiveSmallIntegerField(default=0)
    p_flipped = models.FloatField(null=True, blank=True)
    flip_axis = models.CharField(max_length=16, blank=True)
    p_inverted = models.FloatField(null=True, blank=True)
    ood_score = models.FloatField(null=True, blank=True)
    # ml.qc.QcScores.to_dict(), for diagnostics.
    scores = models.JSONField(default=dict, blank=True)
    # [{"detector", "reason", "score", "threshold"}]
    reasons = models.JSONField(default=list, blank=True)
    # Transforms (ml.qc.apply_transform names) that undo the problem, in order; empty: no fix.
    suggested_fix = models.JSONField(default=list, blank=True)
    fix_text = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.CLEAR)
    reviewed_by_id = models.BigIntegerField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["dataset", "state"], name="imageqc_state_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["clear", "pending"]) | Q(reviewed_at__isnull=False),
                name="imageqc_decided_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"QC {self.image_id}: {self.state}"

    @property
    def is_flagged(self) -> bool:
        return bool(self.reasons)
