"""Donors, consent forms, consent records and the audit trail.

Donors are pseudonymous: the only link to a person is the optional `user` account (the one
table allowed to hold contact data). Everything else refers to a donor by id.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

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


class Consent(TimeStampedModel):
    """A donor's decision on one consent form version (modelled on HL7 FHIR Consent)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WITHDRAWN = "withdrawn", "Withdrawn"
        EXPIRED = "expired", "Expired"

    class Method(models.TextChoices):
        ONLINE = "online", "Given online by the donor"
        PAPER = "paper", "Paper consent recorded by a site coordinator"

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

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__isnull=True) | Q(period_end__gt=models.F("period_start")),
                name="consent_period_ordered",
            ),
            models.CheckConstraint(
                condition=~Q(status="withdrawn") | Q(withdrawn_at__isnull=False),
                name="consent_withdrawn_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.donor} / {self.form} / {self.status}"

    def permits(self, purpose: str) -> bool:
        return self.decisions.get(purpose) == "permit"
