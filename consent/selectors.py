"""Reads for consent and intake, with the object-level access rules every entry point uses.

Who sees what: a donor sees only their own donor record, consents, images and uploads; a site
coordinator sees the consents they recorded and the uploads they made (and reviews the
quarantine); an admin sees everything; anyone else (volunteers, clinicians, researchers) sees
none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.access import access_has_role
from accounts.models import User
from accounts.roles import Role
from annotate.models import Annotation, Dataset, Image, ImageQc
from consent.models import Consent, ConsentForm, Donor, IntakeBatch, IntakeItem, Purpose
from tessera.errors import NotPermitted

_NOT_FOUND = "No such record."


def donor_for_user(*, user: User) -> Donor | None:
    """The donor record of a donor's own account, or None."""
    if not user.is_authenticated or not access_has_role(user, Role.DONOR):
        return None
    return Donor.objects.filter(user=user).first()


def consent_forms_published() -> list[ConsentForm]:
    """The newest published version of each form per language (older versions stay valid
    for the consents that point at them, but are not offered for new signatures)."""
    forms = ConsentForm.objects.filter(published_at__isnull=False).order_by(
        "slug", "language", "-version"
    )
    latest: dict[tuple[str, str], ConsentForm] = {}
    for form in forms:
        latest.setdefault((form.slug, form.language), form)
    return list(latest.values())


def consent_form_get_published(*, form_id: int) -> ConsentForm:
    form = ConsentForm.objects.filter(pk=form_id, published_at__isnull=False).first()
    if form is None:
        raise NotPermitted("No such consent form.")
    return form


def consents_visible_to(*, user: User) -> QuerySet[Consent]:
    """Consents `user` may see; raises `NotPermitted` for roles that see none."""
    base = Consent.objects.select_related("form", "donor").order_by("-given_at", "-id")
    if access_has_role(user, Role.ADMIN):
        return base
    allowed = Q(pk__in=[])
    if access_has_role(user, Role.COORDINATOR):
        allowed |= Q(recorded_by_id=user.pk)
    donor = donor_for_user(user=user)
    if donor is not None:
        allowed |= Q(donor=donor)
    if not access_has_role(user, Role.COORDINATOR) and donor is None:
        raise NotPermitted("Your account does not have access to consents.")
    return base.filter(allowed)


def consent_get_for_user(*, user: User, consent_id: int) -> Consent:
    consent = consents_visible_to(user=user).filter(pk=consent_id).first()
    if consent is None:
        raise NotPermitted(_NOT_FOUND)
    return consent


def withdrawal_channel_for(*, user: User, consent: Consent) -> str:
    """How a withdrawal by `user` (who may see `consent`) is recorded."""
    if consent.donor.user_id == user.pk:
        return Consent.WithdrawalChannel.DONOR_ONLINE
    if access_has_role(user, Role.ADMIN):
        return Consent.WithdrawalChannel.ADMIN
    return Consent.WithdrawalChannel.COORDINATOR


def consents_for_upload(*, user: User) -> QuerySet[Consent]:
    """Visible consents under which images can be added now (active, in period, annotation)."""
    now = timezone.now()
    return (
        consents_visible_to(user=user)
        .filter(status=Consent.Status.ACTIVE, period_start__lte=now)
        .filter(Q(period_end__isnull=True) | Q(period_end__gt=now))
        .filter(**{f"decisions__{Purpose.ANNOTATION}": "permit"})
    )


def consent_get_for_upload(*, user: User, consent_id: int) -> Consent:
    consent = consents_for_upload(user=user).filter(pk=consent_id).first()
    if consent is None:
        raise NotPermitted("You cannot add images under this consent.")
    return consent


def datasets_for_upload() -> QuerySet[Dataset]:
    return Dataset.objects.filter(is_active=True).order_by("name")


@dataclass(frozen=True)
class DonorImageRow:
    """One of a donor's images as the donor sees it."""

    image: Image
    times_labelled: int
    export_state: str


def image_export_states(*, image_ids: list[int]) -> dict[int, str]:
    """Per image, whether it was in an export: "not exported" until exports exist.

    The export issue extends this (e.g. "in export v3 (2026-11-20)", "in 2 exports; marked
    after withdrawal"); callers show the string as is.
    """
    return dict.fromkeys(image_ids, "not exported")


def donor_images(*, user: User) -> list[DonorImageRow]:
    """The donor's own images (all statuses), newest first, with how often each was labelled
    (counted annotations only) and its export state."""
    donor = donor_for_user(user=user)
    if donor is None:
        raise NotPermitted("Only donors have a list of their images.")
    images = list(
        Image.objects.filter(donor=donor)
        .select_related("dataset")
        .annotate(times_labelled=Count("annotations", filter=Q(annotations__is_counted=True)))
        .order_by("-created_at", "-id")
    )
    states = image_export_states(image_ids=[i.pk for i in images])
    return [DonorImageRow(i, i.times_labelled, states[i.pk]) for i in images]


def image_queryset_exportable(
    *,
    dataset: Dataset | None = None,
    purpose: str = Purpose.RESEARCH_EXPORT,
    at: datetime | None = None,
) -> QuerySet[Image]:
    """Images an export may include: still with pixels (in play or retired), whose consent is
    active, inside its period at `at` and permits `purpose` (default: research export).

    The export builder calls this at build time, so a withdrawal before the build excludes
    the image; withdrawn, quarantined and unusable images are never exportable.
    """
    at = at or timezone.now()
    images = Image.objects.filter(
        status__in=[Image.Status.ACTIVE, Image.Status.RETIRED],
        consent__status=Consent.Status.ACTIVE,
        consent__period_start__lte=at,
        **{f"consent__decisions__{purpose}": "permit"},
    ).filter(Q(consent__period_end__isnull=True) | Q(consent__period_end__gt=at))
    if dataset is not None:
        images = images.filter(dataset=dataset)
    return images.exclude(file="")


def annotations_counted_for(*, image_ids: list[int]) -> QuerySet[Annotation]:
    return Annotation.objects.filter(image_id__in=image_ids, is_counted=True)


# --- Intake ---------------------------------------------------------------------------------------


def intake_batches_visible_to(*, user: User) -> QuerySet[IntakeBatch]:
    """Batches the user uploaded, batches for their own donor record, or all (admin)."""
    base = IntakeBatch.objects.select_related("dataset", "consent").order_by("-created_at")
    if access_has_role(user, Role.ADMIN):
        return base
    allowed = Q(uploaded_by=user) if access_has_role(user, Role.COORDINATOR) else Q(pk__in=[])
    donor = donor_for_user(user=user)
    if donor is not None:
        allowed |= Q(donor=donor)
    if donor is None and not access_has_role(user, Role.COORDINATOR):
        raise NotPermitted("Your account does not have access to uploads.")
    return base.filter(allowed)


def intake_batch_get_for_user(*, user: User, public_id: UUID) -> IntakeBatch:
    batch = intake_batches_visible_to(user=user).filter(public_id=public_id).first()
    if batch is None:
        raise NotPermitted(_NOT_FOUND)
    return batch


def _current_reason(item: IntakeItem) -> str:
    """The intake result, updated when the stored image was held or settled since."""
    image = item.image if item.image_id else None
    if item.status != IntakeItem.Status.ACCEPTED or image is None:
        return item.reason
    qc = getattr(image, "qc", None)
    if image.status == Image.Status.QUARANTINED and qc and qc.state == ImageQc.State.PENDING:
        why = qc.fix_text or "it may not fit this collection"
        return (
            f"De-identified and stored; held for a quality check ({why}) until a coordinator "
            "or clinician looks at it."
        )
    if image.status == Image.Status.UNUSABLE:
        return "De-identified and stored; a reviewer marked it unusable, so it is not played."
    return item.reason


def intake_batch_progress(*, batch: IntakeBatch) -> dict:
    """Counts per status and one row per file (zip members after their archive)."""
    items = list(
        IntakeItem.objects.filter(batch=batch)
        .select_related("image", "image__qc")
        .order_by("position", "parent_id", "id")
    )
    counts = dict.fromkeys(IntakeItem.Status.values, 0)
    for item in items:
        counts[item.status] += 1
    files = [i for i in items if i.status != IntakeItem.Status.UNPACKED]
    done = sum(i.status in IntakeItem.FINISHED for i in files)
    rows = [
        {
            "id": str(i.public_id),
            "name": i.name,
            "archive": i.parent_id is not None,
            "is_archive": i.status == IntakeItem.Status.UNPACKED,
            "status": i.status,
            "status_label": i.get_status_display(),
            "reason": _current_reason(i),
            "code": i.code,
            "flags": i.flags,
            "image": str(i.image.public_id) if i.image_id and i.image.file else None,
        }
        for i in items
    ]
    return {
        "batch": str(batch.public_id),
        "dataset": batch.dataset.name,
        "counts": counts,
        "total": len(files),
        "done": done,
        "finished": done == len(files),
        "items": rows,
    }


def intake_review_queue(*, user: User) -> QuerySet[IntakeItem]:
    """Quarantined items waiting for a coordinator, oldest first (no donor identity)."""
    if not access_has_role(user, Role.COORDINATOR, Role.ADMIN):
        raise NotPermitted("Only site coordinators review intake.")
    return (
        IntakeItem.objects.filter(
            status=IntakeItem.Status.QUARANTINED, image__status=Image.Status.QUARANTINED
        )
        .select_related("image", "batch__dataset")
        .order_by("created_at", "id")
    )


def intake_item_get_for_review(*, user: User, public_id: UUID) -> IntakeItem:
    item = intake_review_queue(user=user).filter(public_id=public_id).first()
    if item is None:
        raise NotPermitted("This item is not waiting for review.")
    return item
