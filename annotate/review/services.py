"""Writes for clinician review: opening items, claims, decisions that become gold, reports.

A final decision is gold: the image's `gold_class` (classification) or a `GoldMask`
(segmentation) is set, consensus is invalidated so the next full refit clamps it and rescales the
players' skill, and `on_decision_settled` tells scoring which earlier answers it settled.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate.models import (
    Consensus,
    ConsensusMask,
    Dataset,
    GoldMask,
    Image,
    LabelClass,
    ReviewDecision,
    ReviewItem,
)
from annotate.review.access import access_can_work_stage, access_require_review
from annotate.review.selectors import review_queue, unclaimed_q
from consent.services import audit_event_record
from tessera.errors import ApplicationError, Conflict, NotPermitted

logger = logging.getLogger(__name__)

CLAIM_TTL = timedelta(minutes=20)
REPORT_TEXT_MAX = 500
# Two contours count as the same opinion at this Dice overlap.
CONTOUR_AGREEMENT_DICE = 0.9
Action = ReviewDecision.Action
Stage = ReviewItem.Stage


# --- opening items ---------------------------------------------------------------------------------


def review_item_open(
    *, image: Image, reason: str, priority: float = 0.0, details: dict[str, Any] | None = None
) -> ReviewItem:
    """Open (or refresh) the one open item for `image` and `reason`.

    For other apps: the model opens `disagreement` items (put its opinion in
    `details["model"]`), intake opens `quarantine` items. An existing open item keeps its
    claim and decisions; its priority becomes the larger of the two and `details` are merged.
    """
    if reason not in ReviewItem.Reason.values:
        raise ApplicationError(f"Unknown review reason {reason!r}.")
    with transaction.atomic():
        item = (
            ReviewItem.objects.select_for_update()
            .filter(image=image, reason=reason, status=ReviewItem.Status.OPEN)
            .first()
        )
        if item is None:
            try:
                with transaction.atomic():
                    return ReviewItem.objects.create(
                        image=image, reason=reason, priority=priority, details=details or {}
                    )
            except IntegrityError:
                # Opened concurrently: fall through and update that one.
                item = ReviewItem.objects.select_for_update().get(
                    image=image, reason=reason, status=ReviewItem.Status.OPEN
                )
        item.priority = max(item.priority, priority)
        item.details = {**item.details, **(details or {})}
        item.save(update_fields=["priority", "details", "updated_at"])
        return item


def review_item_report(*, image: Image, player, reason_text: str) -> ReviewItem:  # type: ignore[no-untyped-def]
    """A player says "this image looks wrong": open or add to the image's `reported` item.

    The caller has checked the player may see the image. A player counts once per item (a repeat
    is a no-op); priority grows with the number of distinct reporters. Audited.
    """
    text = " ".join(reason_text.split())[:REPORT_TEXT_MAX]
    if not text:
        raise ApplicationError("Please say what looks wrong.")
    with transaction.atomic():
        item = review_item_open(image=image, reason=ReviewItem.Reason.REPORTED)
        item = ReviewItem.objects.select_for_update().get(pk=item.pk)
        reports = list(item.details.get("reports", []))
        if any(r.get("player_id") == player.pk for r in reports):
            return item
        reports.append({"player_id": player.pk, "text": text, "at": timezone.now().isoformat()})
        item.details = {**item.details, "reports": reports}
        item.priority = min(1.0, len(reports) / 4)
        item.save(update_fields=["details", "priority", "updated_at"])
        audit_event_record(
            actor_id=player.pk,
            action="review.reported",
            target=item,
            details={"image": str(image.public_id), "n_reports": len(reports)},
        )
    return item


# --- claims ----------------------------------------------------------------------------------------


def _take(*, item_id: int, user, now) -> bool:  # type: ignore[no-untyped-def]
    """Compare-and-set: hold the item if nobody else does. One UPDATE, so two clinicians
    racing for the same item cannot both win, on any database."""
    return bool(
        ReviewItem.objects.filter(pk=item_id, status=ReviewItem.Status.OPEN)
        .filter(unclaimed_q(user=user, now=now))
        .update(assigned_to=user, claim_expires_at=now + CLAIM_TTL, updated_at=now)
    )


def _release_others(*, user, keep: int | None) -> None:  # type: ignore[no-untyped-def]
    # A clinician holds one item at a time; moving on frees the previous one.
    ReviewItem.objects.filter(assigned_to=user, status=ReviewItem.Status.OPEN).exclude(
        pk=keep
    ).update(assigned_to=None, claim_expires_at=None)


def review_item_claim(*, item_id: int, user) -> ReviewItem:  # type: ignore[no-untyped-def]
    """Hold one item for `CLAIM_TTL` (renewed when already held); `Conflict` when another
    clinician holds it, `NotPermitted` when `user` may not decide it."""
    if not review_queue(user=user).filter(pk=item_id).exists():
        raise NotPermitted("This item is not in your review queue.")
    with transaction.atomic():
        if not _take(item_id=item_id, user=user, now=timezone.now()):
            raise Conflict("Another clinician is working on this item.")
        _release_others(user=user, keep=item_id)
    return ReviewItem.objects.get(pk=item_id)


def review_item_claim_next(  # type: ignore[no-untyped-def]
    *, user, dataset_slug: str | None = None, reason: str | None = None
) -> ReviewItem | None:
    """Hold the best open item nobody else holds (the one `user` holds already, if any)."""
    now = timezone.now()
    queue = review_queue(user=user, dataset_slug=dataset_slug, reason=reason)
    mine = queue.filter(assigned_to=user, claim_expires_at__gt=now).first()
    if mine is not None:
        return mine
    for _attempt in range(3):
        candidates = list(
            queue.filter(unclaimed_q(user=user, now=now)).values_list("pk", flat=True)[:20]
        )
        if not candidates:
            return None
        for pk in candidates:
            with transaction.atomic():
                if _take(item_id=pk, user=user, now=now):
                    _release_others(user=user, keep=pk)
                    return ReviewItem.objects.select_related("image__dataset").get(pk=pk)
        now = timezone.now()
    return None


def review_item_release(*, item_id: int, user) -> None:  # type: ignore[no-untyped-def]
    """Give an item back to the queue (only the holder can)."""
    ReviewItem.objects.filter(pk=item_id, assigned_to=user).update(
        assigned_to=None, claim_expires_at=None, updated_at=timezone.now()
    )


# --- decisions -------------------------------------------------------------------------------------


def _polygon(geometry: Any, image: Image) -> dict:
    """Validate a contour: {"type": "polygon", "points": [[x, y], ...]} inside the image."""
    if not isinstance(geometry, dict) or geometry.get("type") != "polygon":
        raise ApplicationError("A contour must be {'type': 'polygon', 'points': [[x, y], ...]}.")
    try:
        points = np.asarray(geometry.get("points"), dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise ApplicationError("Contour points must be [x, y] pairs of numbers.") from None
    if len(points) < 3 or len(points) > 5000 or not np.isfinite(points).all():
        raise ApplicationError("A contour needs between 3 and 5,000 points.")
    if (
        (points < 0).any()
        or (points[:, 0] > image.width).any()
        or (points[:, 1] > image.height).any()
    ):
        raise ApplicationError("The contour leaves the image.")
    return {"type": "polygon", "points": np.round(points, 2).tolist()}


def _mask_of(geometry: dict, image: Image) -> np.ndarray:
    from annotate.consensus import contour_points
    from ml.raster import polygon_to_mask

    return polygon_to_mask(contour_points(geometry), image.height, image.width)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def _resolve_class(dataset: Dataset, code: str | None) -> LabelClass:
    label = dataset.classes.filter(code=code).first() if code else None
    if label is None:
        raise ApplicationError("Choose one of the dataset's classes.", extra={"label": code})
    return label


def _validate(
    *, item: ReviewItem, action: str, label: str | None, geometry: Any
) -> tuple[LabelClass | None, dict | None]:
    """The class or contour a decision carries; raises when the action does not fit the item."""
    image, dataset = item.image, item.image.dataset
    segmentation = dataset.task == Dataset.Task.SEGMENTATION
    if action not in Action.values:
        raise ApplicationError(f"Unknown decision {action!r}.")
    if action == Action.ESCALATE:
        if item.stage == Stage.ADJUDICATION:
            raise ApplicationError("An adjudication is final: it cannot be escalated.")
        if segmentation and geometry:
            return None, _polygon(geometry, image)
        return (_resolve_class(dataset, label) if label else None), None
    if action == Action.CONFIRM:
        if segmentation:
            if not ConsensusMask.objects.filter(image=image).exists():
                raise Conflict("There is no consensus contour to confirm yet.")
            return None, None
        consensus = Consensus.objects.filter(image=image).select_related("label_class").first()
        if consensus is None:
            raise Conflict("There is no crowd consensus to confirm; choose a label instead.")
        return consensus.label_class, None
    if action == Action.RELABEL:
        if segmentation:
            raise ApplicationError("Outlining datasets take a contour, not a label.")
        return _resolve_class(dataset, label), None
    if action == Action.CONTOUR:
        if not segmentation:
            raise ApplicationError("Only outlining datasets take a contour.")
        return None, _polygon(geometry, image)
    return None, None  # release, unusable


def _same_opinion(first: ReviewDecision, second: ReviewDecision, image: Image) -> bool:
    """Whether a second opinion agrees with the first clinician's proposal (none: it agrees)."""
    if first.label_class_id is None and first.geometry is None:
        return True
    if first.label_class_id is not None:
        return second.action in (Action.CONFIRM, Action.RELABEL) and (
            second.label_class_id == first.label_class_id
        )
    if second.action == Action.CONTOUR:
        return _dice(_mask_of(first.geometry, image), _mask_of(second.geometry, image)) >= (
            CONTOUR_AGREEMENT_DICE
        )
    if second.action == Action.CONFIRM:
        from annotate.review.selectors import _read_mask

        mask = _read_mask(ConsensusMask.objects.get(image=image))
        return _dice(_mask_of(first.geometry, image), mask) >= CONTOUR_AGREEMENT_DICE
    return False


@transaction.atomic
def review_decision_submit(  # type: ignore[no-untyped-def]
    *,
    item_id: int,
    user,
    action: str,
    label: str | None = None,
    geometry: Any = None,
    note: str = "",
) -> ReviewDecision:
    """Record `user`'s decision on an item they hold, and settle the item when it is final.

    - first stage: any decision but `escalate` is final; `escalate` (optionally with a proposed
      label or contour) sends the item to a second, different clinician;
    - second stage: final when it agrees with the first clinician's proposal (or there was none);
      a disagreement or another `escalate` sends it to an adjudicator;
    - adjudication (admins or designated clinicians): final.
    Every decision is audited. Raises `Conflict` when `user` does not hold the item.
    """
    access_require_review(user)
    item = (
        ReviewItem.objects.select_for_update()
        .select_related("image__dataset")
        .filter(pk=item_id)
        .first()
    )
    if item is None:
        raise NotPermitted("No such review item.")
    if item.status != ReviewItem.Status.OPEN:
        raise Conflict("This item is already resolved.")
    if not access_can_work_stage(user, item.stage):
        raise NotPermitted("Only an adjudicator may decide this item.")
    now = timezone.now()
    if item.assigned_to_id != user.pk or item.claim_expires_at <= now:
        raise Conflict("Claim the item before deciding (your claim may have expired).")
    if item.decisions.filter(clinician=user).exists():
        raise NotPermitted("You already gave your opinion on this item.")
    label_class, polygon = _validate(item=item, action=action, label=label, geometry=geometry)
    decision = ReviewDecision.objects.create(
        item=item,
        clinician=user,
        stage=item.stage,
        action=action,
        label_class=label_class,
        geometry=polygon,
        note=note.strip()[:2000],
    )
    audit_event_record(
        actor_id=user.pk,
        action="review.decision",
        target=item,
        details={
            "decision": decision.pk,
            "stage": decision.stage,
            "action": action,
            "label": label_class.code if label_class else None,
            "image": str(item.image.public_id),
        },
    )
    next_stage = _next_stage(item, decision)
    if next_stage is not None:
        item.stage = next_stage
        item.assigned_to, item.claim_expires_at = None, None
        item.save(update_fields=["stage", "assigned_to", "claim_expires_at", "updated_at"])
        audit_event_record(
            actor_id=user.pk,
            action="review.escalated",
            target=item,
            details={"stage": next_stage, "decision": decision.pk},
        )
        return decision
    _settle(item=item, decision=decision, user=user, now=now)
    return decision


def _next_stage(item: ReviewItem, decision: ReviewDecision) -> str | None:
    if item.stage == Stage.FIRST:
        return Stage.SECOND if decision.action == Action.ESCALATE else None
    if item.stage == Stage.SECOND:
        first = item.decisions.get(stage=Stage.FIRST)
        if decision.action == Action.ESCALATE or not _same_opinion(first, decision, item.image):
            return Stage.ADJUDICATION
    return None


def _settle(*, item: ReviewItem, decision: ReviewDecision, user, now) -> None:  # type: ignore[no-untyped-def]
    """Apply a final decision to the image (gold, mask, status) and resolve its open items."""
    image = Image.objects.select_for_update().select_related("dataset").get(pk=item.image_id)
    action = decision.action
    update = []
    if action in (Action.CONFIRM, Action.RELABEL) and decision.label_class_id is not None:
        image.gold_class_id = decision.label_class_id
        update.append("gold_class")
    if (
        action in (Action.CONFIRM, Action.CONTOUR)
        and image.dataset.task == Dataset.Task.SEGMENTATION
    ):
        _gold_mask_store(image=image, decision=decision)
    if action == Action.UNUSABLE:
        image.status = Image.Status.UNUSABLE
        update.append("status")
    elif image.status == Image.Status.QUARANTINED:
        # Any decision other than "unusable" says the image is fit to be shown.
        image.status = Image.Status.ACTIVE
        update.append("status")
    if update:
        image.save(update_fields=[*update, "updated_at"])
    from annotate.qc.services import qc_settle_from_review

    # Every open item of the image closes below, the QC one too: settle its QC flag (if any) the
    # same way the QC grid does, kept or unusable.
    qc_settle_from_review(image_id=image.pk, action=action, actor_id=user.pk)
    outcome = {
        "action": action,
        "label": decision.label_class.code if decision.label_class_id else None,
        "decision_id": decision.pk,
        "stage": decision.stage,
    }
    open_items = list(
        ReviewItem.objects.select_for_update().filter(image=image, status=ReviewItem.Status.OPEN)
    )
    for other in open_items:
        other.status = ReviewItem.Status.RESOLVED
        other.resolved_at = now
        other.outcome = outcome if other.pk == item.pk else {**outcome, "resolved_with": item.pk}
        other.assigned_to, other.claim_expires_at = None, None
        other.save(
            update_fields=[
                "status",
                "resolved_at",
                "outcome",
                "assigned_to",
                "claim_expires_at",
                "updated_at",
            ]
        )
    audit_event_record(
        actor_id=user.pk,
        action="review.resolved",
        target=item,
        details={**outcome, "image": str(image.public_id), "items": [i.pk for i in open_items]},
    )
    logger.info("review item %s resolved: %s", item.pk, outcome)
    on_decision_settled(image.pk)


def _gold_mask_store(*, image: Image, decision: ReviewDecision) -> GoldMask:
    """Store the decided contour (or the confirmed STAPLE mask) as the image's clinician gold."""
    from PIL import Image as PILImage

    from annotate.review.selectors import _read_mask
    from ml.raster import mask_to_polygons

    if decision.geometry is not None:
        polygons = [decision.geometry["points"]]
        mask = _mask_of(decision.geometry, image)
    else:  # confirmed the STAPLE consensus as it is
        mask = _read_mask(ConsensusMask.objects.get(image=image))
        polygons = [ring.tolist() for ring in mask_to_polygons(mask)]
    out = io.BytesIO()
    PILImage.fromarray(mask.astype(np.uint8) * 255, mode="L").save(out, format="PNG")
    record = GoldMask.objects.filter(image=image).first() or GoldMask(image=image)
    if record.mask:
        old = record.mask
        transaction.on_commit(lambda name=old.name, storage=old.storage: storage.delete(name))
    record.polygons = polygons
    record.source = GoldMask.Source.CLINICIAN
    record.decided_by_id = decision.clinician_id
    record.mask.save("gold.png", ContentFile(out.getvalue()), save=False)
    record.save()
    return record


def on_decision_settled(image_id: int) -> None:
    """Hook after a clinician's final decision on an image.

    Gold (or the image's usability) changed, so consensus needs a full refit: it clamps the new
    gold and rescales every player's skill. Players whose earlier answers the decision settles
    get their delayed points, scored against the clinician's class (after commit).
    """
    from annotate.consensus import consensus_invalidate
    from games.scoring import delayed_points_award

    image = Image.objects.select_related("dataset", "gold_class").get(pk=image_id)
    if image.dataset.task != Dataset.Task.CLASSIFICATION:
        return
    consensus_invalidate(dataset_id=image.dataset_id)
    if image.gold_class is not None:
        codes = list(image.dataset.classes.order_by("order").values_list("code", flat=True))
        posterior = [1.0 if code == image.gold_class.code else 0.0 for code in codes]
        transaction.on_commit(
            lambda: delayed_points_award(
                image_id=image_id,
                posterior=posterior,
                consensus_label=image.gold_class.name,
                newly_gold=True,
            )
        )
