"""Donors, consent forms, consent records, intake and the audit trail.

Donors are pseudonymous: the only link to a person is the optional `user` account (the one
table allowed to hold contact data). Everything else refers to a donor by id.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tessera.models import TimeStampedModel


class AuditEvent(models.Model):
    """Append-only record of who did what to which object. Never holds personal data.

    `actor` is kept as a plain id (not a foreign key) so that deleting an account never
    rewrites history.
    """

    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.target_type}:{self.target_id}"
        )

    def save(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise ValueError("Audit events are append-only.")


class Donor(TimeStampedModel):
    """A pseudonymous donor of images. `pseudonym` is what every export and DICOM file carries."""

    pseudonym = models.CharField(max_length=20, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="donor",
    )
    # Hash of the code a donor keeps to withdraw without an account (paper consents).
    revocation_code_hash = models.CharField(max_length=128, blank=True)

    def __str__(self) -> str:
        return self.pseudonym


class Purpose(models.TextChoices):
    ANNOTATION = "annotation", "Labelling in annotation games"
    RESEARCH_EXPORT = "research_export", "Export to researchers as de-identified datasets"
    COMMERCIAL = "commercial", "Commercial use"
    RECONTACT = "recontact", "Re-contact about this donation"


class ConsentForm(TimeStampedModel):
    """A versioned consent text. Immutable once published; a new version is a new row."""

    slug = models.SlugField(max_length=60)
    version = models.PositiveIntegerField()
    language = models.CharField(max_length=8, default="en")
    title = models.CharField(max_length=200)
    text = models.TextField()
    purposes = models.JSONField(default=list)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug", "language", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["slug", "version", "language"], name="consentform_unique_version"
            )
        ]
        permissions = [
            ("give_consent", "Can give and withdraw their own consent"),
            ("record_paper_consent", "Can record a paper consent for a donor"),
            ("upload_images", "Can upload images under a consent"),
            ("review_intake", "Can review quarantined intake"),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.version} ({self.language})"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def purpose_choices(self) -> list[tuple[str, str]]:
        """(value, label) of each purpose this form asks about, in the form's order."""
        labels = dict(Purpose.choices)
        return [(p, labels.get(p, p)) for p in self.purposes]


class Consent(TimeStampedModel):
    """A donor's decision on one consent form version, modelled on HL7 FHIR Consent (R4/R5).

    FHIR mapping: `status` → Consent.status (active / inactive, here split into withdrawn and
    expired); `scope` → Consent.scope (R4) / category; `donor` → Consent.patient|subject as a
    pseudonymous reference; `form` → Consent.sourceReference (the signed document version);
    `decisions` → Consent.provision.provision[] with one `permit`/`deny` per purpose;
    `period_start`/`period_end` → Consent.provision.period; `given_at` → Consent.dateTime;
    `method` + `recorded_by_id` → Consent.performer / verification (who recorded it, how).
    A new form version never changes an existing consent: the row points at its version.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WITHDRAWN = "withdrawn", "Withdrawn"
        EXPIRED = "expired", "Expired"

    class Method(models.TextChoices):
        ONLINE = "online", "Given online by the donor"
        PAPER = "paper", "Paper consent recorded by a site coordinator"

    class Scope(models.TextChoices):
        RESEARCH = "research", "Research"
        PATIENT_PRIVACY = "patient-privacy", "Privacy consent"

    class WithdrawalChannel(models.TextChoices):
        DONOR_ONLINE = "donor_online", "By the donor, logged in"
        REVOCATION_CODE = "revocation_code", "By the donor, with the revocation code"
        COORDINATOR = "coordinator", "Recorded by a site coordinator"
        ADMIN = "admin", "By an administrator"

    donor = models.ForeignKey(Donor, on_delete=models.PROTECT, related_name="consents")
    form = models.ForeignKey(ConsentForm, on_delete=models.PROTECT, related_name="consents")
    # {purpose: "permit" | "deny"} for each purpose of the form (FHIR provision per purpose).
    decisions = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.ONLINE)
    recorded_by_id = models.BigIntegerField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(max_length=20, choices=Scope.choices, default=Scope.RESEARCH)
    # When the donor gave it (FHIR Consent.dateTime); for paper, the date on the signed sheet.
    given_at = models.DateTimeField(default=timezone.now)
    withdrawn_by_id = models.BigIntegerField(null=True, blank=True)
    withdrawal_channel = models.CharField(
        max_length=20, choices=WithdrawalChannel.choices, blank=True
    )

    class Meta:
        ordering = ["-given_at", "-id"]
        indexes = [models.Index(fields=["donor", "status"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__isnull=True) | Q(period_end__gt=models.F("period_start")),
                name="consent_period_ordered",
            ),
            models.CheckConstraint(
                condition=~Q(status="withdrawn") | Q(withdrawn_at__isnull=False),
                name="consent_withdrawn_has_time",
            ),
            # Signing the same form version twice is a retry, not a second consent.
            models.UniqueConstraint(
                fields=["donor", "form"],
                condition=Q(status="active"),
                name="consent_one_active_per_form",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.donor} / {self.form} / {self.status}"

    def permits(self, purpose: str) -> bool:
        return self.decisions.get(purpose) == "permit"

    def decision_rows(self) -> list[tuple[str, bool]]:
        """(purpose label, permitted) for each purpose of the form, in the form's order."""
        return [(label, self.permits(value)) for value, label in self.form.purpose_choices()]

    def is_in_force(self, at=None) -> bool:  # type: ignore[no-untyped-def]
        """Active and inside its validity period at `at` (default: now)."""
        at = at or timezone.now()
        return (
            self.status == self.Status.ACTIVE
            and self.period_start <= at
            and (self.period_end is None or at < self.period_end)
        )


def intake_upload_to(instance: IntakeItem, filename: str) -> str:
    # Private temp area: never a donor-supplied name, never served by any URL.
    return f"intake-tmp/{instance.batch.public_id.hex}/{instance.public_id.hex}.upload"


def intake_cleaned_to(instance: IntakeItem, filename: str) -> str:
    return f"cleaned/{instance.batch.dataset_id}/{instance.public_id.hex}.dcm"


class IntakeBatch(TimeStampedModel):
    """One upload action: one or more files (or zips) for one donor, consent and dataset."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    donor = models.ForeignKey(Donor, on_delete=models.PROTECT, related_name="intake_batches")
    consent = models.ForeignKey(Consent, on_delete=models.PROTECT, related_name="intake_batches")
    dataset = models.ForeignKey(
        "annotate.Dataset", on_delete=models.PROTECT, related_name="intake_batches"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="intake_batches",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "intake batches"

    def __str__(self) -> str:
        return f"batch {self.public_id}"


class IntakeItem(TimeStampedModel):
    """One uploaded file or zip member and what intake made of it.

    The upload bytes live in `upload` (private, under MEDIA_ROOT) only until the task has run;
    a zip becomes an `unpacked` item with one child per member. `cleaned_file` holds the
    de-identified DICOM (the web derivative is the Image's `file`); original bytes are never kept.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        ACCEPTED = "accepted", "Accepted"
        QUARANTINED = "quarantined", "Waiting for review"
        REJECTED = "rejected", "Rejected"
        UNPACKED = "unpacked", "Archive unpacked"
        WITHDRAWN = "withdrawn", "Withdrawn by donor"

    LIVE = (Status.ACCEPTED, Status.QUARANTINED)
    FINISHED = (Status.ACCEPTED, Status.QUARANTINED, Status.REJECTED, Status.UNPACKED,
                Status.WITHDRAWN)  # fmt: skip

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    batch = models.ForeignKey(IntakeBatch, on_delete=models.CASCADE, related_name="items")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="members"
    )
    position = models.PositiveIntegerField(default=0)
    # Display name of the file or zip member, shown to the uploader only.
    name = models.CharField(max_length=120, blank=True)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    reason = models.CharField(max_length=300, blank=True)
    code = models.CharField(max_length=40, blank=True)
    flags = models.JSONField(default=list, blank=True)
    # Detected text regions [{left, top, width, height, confidence}] (never the text itself).
    text_boxes = models.JSONField(default=list, blank=True)
    kind = models.CharField(max_length=8, blank=True)
    upload = models.FileField(upload_to=intake_upload_to, blank=True, max_length=200)
    cleaned_file = models.FileField(upload_to=intake_cleaned_to, blank=True, max_length=200)
    image = models.OneToOneField(
        "annotate.Image",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="intake_item",
    )
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    phash = models.CharField(max_length=16, blank=True)
    near_duplicate_of = models.ForeignKey(
        "annotate.Image",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="near_duplicates",
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by_id = models.BigIntegerField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "position", "id"]
        constraints = [
            # Closes the race between two uploads of the same cleaned bytes.
            models.UniqueConstraint(
                fields=["sha256"],
                condition=Q(status__in=["accepted", "quarantined"]) & ~Q(sha256=""),
                name="intakeitem_unique_live_sha256",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["accepted", "quarantined"]) | Q(image__isnull=False),
                name="intakeitem_live_has_image",
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.public_id} ({self.status})"
