"""Settle a QC flag: the one function both the QC grid and clinician review go through.

Never silently altered: the stored pixels change only here, when a reviewer accepts the
suggested fix, and every decision is an audit event.
"""

from __future__ import annotations

import logging
from uuid import UUID

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from annotate.models import Dataset, Image, ImageQc, ReviewDecision, ReviewItem
from annotate.qc.pixels import SWAPS_AXES, rewrite_file
from consent.models import IntakeItem
from consent.services import audit_event_record
from tessera.errors import ApplicationError, Conflict, NotPermitted
from tessera.media import files_delete_on_commit

logger = logging.getLogger(__name__)

State = ImageQc.State
# What a reviewer clicks on the grid -> the state it settles the flag in.
GRID_ACTIONS = {"accept_fix": State.FIXED, "keep": State.KEPT, "unusable": State.UNUSABLE}


def image_fix_apply(*, image: Image, transforms: list[str]) -> None:
    """Rewrite the stored image and its thumbnail with `transforms` (caller holds the row lock
    and saves). The old files are deleted after commit; a rollback leaves the new ones to the
    media sweeper. `sha256` stays the hash of the upload as received, so a re-upload of the same
    file is still recognised as a duplicate."""
    if not transforms:
        raise ApplicationError("There is no fix to apply to this image.")
    old = [name for name in (image.file.name, image.thumbnail.name) if name]
    with image.file.open("rb") as handle:
        content, extension = rewrite_file(handle.read(), transforms)
    image.file.save(f"image.{extension}", ContentFile(content), save=False)
    if image.thumbnail:
        with image.thumbnail.open("rb") as handle:
            thumb, thumb_ext = rewrite_file(handle.read(), transforms)
        image.thumbnail.save(f"thumb.{thumb_ext}", ContentFile(thumb), save=False)
    if sum(t in SWAPS_AXES for t in transforms) % 2:
        image.width, image.height = image.height, image.width
    files_delete_on_commit(old)


def _intake_pending(image: Image) -> bool:
    # Burned-in text waits for the coordinator's intake review, whatever QC says.
    return IntakeItem.objects.filter(image=image, status=IntakeItem.Status.QUARANTINED).exists()


@transaction.atomic
def qc_resolve(
    *, image_id: int, state: str, actor_id: int, resolve_review: bool = True
) -> ImageQc | None:
    """Settle the pending QC flag of an image.

    - `fixed`: apply the suggested fix to the stored pixels and thumbnail, back into play;
    - `kept`: a false alarm, back into play as it is;
    - `unusable`: the image leaves play for good (pixels kept for the record and for training
      figures; a withdrawal still deletes them).
    "Back into play" means ACTIVE, unless it still waits for the intake text check. With
    `resolve_review` the image's open QC review item is resolved too (the grid); clinician review
    passes False because its own settlement resolves the item. Returns None when the image has no
    pending flag and `resolve_review` is False (a review item that did not come from QC).
    """
    if state not in (State.FIXED, State.KEPT, State.UNUSABLE):
        raise ApplicationError(f"Unknown QC decision {state!r}.")
    qc = ImageQc.objects.select_for_update().filter(image_id=image_id).first()
    if qc is None or qc.state != State.PENDING:
        if not resolve_review:
            return None
        raise Conflict("This image is no longer waiting for a QC decision.")
    image = Image.objects.select_for_update().get(pk=image_id)
    if not image.file or image.status == Image.Status.WITHDRAWN:
        if not resolve_review:
            return None
        raise Conflict("This image has no pixels any more (withdrawn or rejected at intake).")
    fields = ["updated_at"]
    if state == State.FIXED:
        image_fix_apply(image=image, transforms=list(qc.suggested_fix))
        fields += ["file", "thumbnail", "width", "height"]
    if state == State.UNUSABLE and image.status != Image.Status.WITHDRAWN:
        image.status = Image.Status.UNUSABLE
        fields.append("status")
    elif image.status == Image.Status.QUARANTINED and not _intake_pending(image):
        image.status = Image.Status.ACTIVE
        fields.append("status")
    image.save(update_fields=fields)
    now = timezone.now()
    qc.state, qc.reviewed_by_id, qc.reviewed_at = state, actor_id, now
    qc.save(update_fields=["state", "reviewed_by_id", "reviewed_at", "updated_at"])
    items: list[int] = []
    if resolve_review:
        items = _review_items_resolve(image=image, state=state, actor_id=actor_id, now=now)
    audit_event_record(
        actor_id=actor_id,
        action="qc.resolved",
        target=image,
        details={
            "image": str(image.public_id),
            "state": state,
            "fix": list(qc.suggested_fix) if state == State.FIXED else [],
            "detectors": [r.get("detector") for r in qc.reasons],
            "status": image.status,
            "review_items": items,
        },
    )
    if state == State.UNUSABLE and resolve_review:
        from annotate.review.services import on_decision_settled

        on_decision_settled(image.pk)
    return qc


def _review_items_resolve(*, image: Image, state: str, actor_id: int, now) -> list[int]:  # type: ignore[no-untyped-def]
    """Resolve the image's open QC quarantine item with the grid's decision."""
    action = (
        ReviewDecision.Action.UNUSABLE if state == State.UNUSABLE else ReviewDecision.Action.RELEASE
    )
    items = list(
        ReviewItem.objects.select_for_update().filter(
            image=image, status=ReviewItem.Status.OPEN, reason=ReviewItem.Reason.QUARANTINE
        )
    )
    for item in items:
        item.status = ReviewItem.Status.RESOLVED
        item.resolved_at = now
        item.outcome = {"action": action, "label": None, "qc": state, "decided_by": actor_id}
        item.assigned_to, item.claim_expires_at = None, None
        item.save(
            update_fields=[
                "status",
                "resolved_at",
                "outcome",
                "assigned_to",
                "claim_expires_at",
                "updated_at",
            ]
        )
    return [item.pk for item in items]


def qc_settle_from_review(*, image_id: int, action: str, actor_id: int) -> ImageQc | None:
    """Clinician review settled a quarantine item: settle the QC flag the same way.

    `unusable` upholds the flag; any other final decision (release, confirm, relabel, contour)
    says the image is fit to be shown as it is. No-op when the image has no pending QC flag.
    """
    state = State.UNUSABLE if action == ReviewDecision.Action.UNUSABLE else State.KEPT
    return qc_resolve(image_id=image_id, state=state, actor_id=actor_id, resolve_review=False)


def qc_decide(*, user, dataset: Dataset, public_id: UUID, action: str) -> ImageQc:  # type: ignore[no-untyped-def]
    """A reviewer's click on the QC grid (or the review page's "apply the fix"). The caller has
    checked `user` may review QC on `dataset` (`annotate.qc.access.dataset_get_for_qc`); the
    image must belong to that dataset."""
    if action not in GRID_ACTIONS:
        raise ApplicationError(f"Unknown QC action {action!r}.")
    image_id = (
        Image.objects.filter(dataset=dataset, public_id=public_id)
        .values_list("pk", flat=True)
        .first()
    )
    if image_id is None:
        raise NotPermitted("No such image in this dataset.")
    qc = qc_resolve(image_id=image_id, state=GRID_ACTIONS[action], actor_id=user.pk)
    if qc is None:  # not reached: with resolve_review a missing flag raises Conflict
        raise Conflict("This image is no longer waiting for a QC decision.")
    return qc
