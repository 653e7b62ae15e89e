"""Coordinator review of quarantined intake: release, black out regions and release, or reject."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from annotate.models import Image
from consent.deid import TextBox, redact_stored
from consent.deid.redact import derive_stored
from consent.models import IntakeItem
from consent.services import audit_event_record
from consent.services.intake import intake_limits, thumbnail_jpeg
from tessera.errors import ApplicationError, Conflict
from tessera.media import files_delete_on_commit

logger = logging.getLogger(__name__)

MAX_BOXES = 200


def _locked_quarantined(item_id: int) -> tuple[IntakeItem, Image]:
    item = IntakeItem.objects.select_for_update().select_related("batch").filter(pk=item_id).first()
    if item is None or item.status != IntakeItem.Status.QUARANTINED or item.image_id is None:
        raise Conflict("This item is no longer waiting for review.")
    image = Image.objects.select_for_update().get(pk=item.image_id)
    if image.status != Image.Status.QUARANTINED:
        raise Conflict("This image is no longer waiting for review.")
    return item, image


def boxes_validate(raw: Sequence[dict], *, width: int, height: int) -> list[TextBox]:
    """Boxes from a client, clipped to the image; empty or malformed boxes are refused."""
    if len(raw) > MAX_BOXES:
        raise ApplicationError(f"At most {MAX_BOXES} regions can be blacked out at once.")
    boxes = []
    for entry in raw:
        try:
            left, top = max(int(entry["left"]), 0), max(int(entry["top"]), 0)
            right = min(left + int(entry["width"]), width)
            bottom = min(top + int(entry["height"]), height)
        except (KeyError, TypeError, ValueError) as exc:
            raise ApplicationError("Each region needs left, top, width and height.") from exc
        if right <= left or bottom <= top:
            raise ApplicationError("A region lies outside the image or has no area.")
        boxes.append(TextBox(left, top, right - left, bottom - top, 100.0, 0))
    return boxes


@transaction.atomic
def intake_item_release(
    *, item_id: int, actor_id: int, boxes: Sequence[TextBox] = ()
) -> IntakeItem:
    """Release a quarantined image into play, first blacking out `boxes` in its stored pixels.

    With boxes, the stored pixels are rewritten (`redact_stored`: the de-identified DICOM and
    the displayed image), and the derivative, thumbnail and hashes are derived again.
    """
    item, image = _locked_quarantined(item_id)
    fields = ["status", "updated_at"]
    if boxes:
        old = [image.file.name, image.thumbnail.name]
        if item.cleaned_file:
            with item.cleaned_file.open("rb") as handle:
                cleaned = redact_stored(handle.read(), boxes)
            old.append(item.cleaned_file.name)
            item.cleaned_file.save("cleaned.dcm", ContentFile(cleaned), save=False)
            rederived = derive_stored(cleaned, limits=intake_limits())
            web = rederived.derivative
            content, extension = (web.webp, "webp") if web.webp is not None else (web.png, "png")
        else:
            with image.file.open("rb") as handle:
                content = redact_stored(handle.read(), boxes)
            extension = image.file.name.rsplit(".", 1)[-1]
            rederived = derive_stored(content, limits=intake_limits())
        image.file.save(f"image.{extension}", ContentFile(content), save=False)
        image.thumbnail.save(
            "thumb.jpg",
            ContentFile(thumbnail_jpeg(rederived.derivative.thumbnail_png)),
            save=False,
        )
        image.sha256, image.phash = rederived.sha256, rederived.phash
        fields += ["file", "thumbnail", "sha256", "phash"]
        item.sha256, item.phash = rederived.sha256, rederived.phash
        files_delete_on_commit(old)
    image.status = Image.Status.ACTIVE
    image.save(update_fields=fields)
    item.status = IntakeItem.Status.ACCEPTED
    item.reason = (
        f"Released after review with {len(boxes)} region(s) blacked out."
        if boxes
        else "Released after review."
    )
    item.reviewed_by_id, item.reviewed_at = actor_id, timezone.now()
    item.save(
        update_fields=[
            "status",
            "reason",
            "reviewed_by_id",
            "reviewed_at",
            "cleaned_file",
            "sha256",
            "phash",
            "updated_at",
        ]
    )
    audit_event_record(
        actor_id=actor_id,
        action="intake.redacted_and_released" if boxes else "intake.released",
        target=item,
        details={"image": str(image.public_id), "regions": len(boxes)},
    )
    return item


@transaction.atomic
def intake_item_reject(*, item_id: int, actor_id: int, reason: str = "") -> IntakeItem:
    """Refuse a quarantined image: it never enters play and its pixels are deleted."""
    item, image = _locked_quarantined(item_id)
    files_delete_on_commit(
        [name for name in (image.file.name, image.thumbnail.name, item.cleaned_file.name) if name]
    )
    image.status = Image.Status.UNUSABLE
    image.file = ""
    image.thumbnail = ""
    image.save(update_fields=["status", "file", "thumbnail", "updated_at"])
    item.status = IntakeItem.Status.REJECTED
    item.code = "rejected_at_review"
    item.reason = (
        ("Rejected at review: " + reason.strip())[:300]
        if reason.strip()
        else ("Rejected at review: the image could not be made safe to show.")
    )
    item.cleaned_file = ""
    item.reviewed_by_id, item.reviewed_at = actor_id, timezone.now()
    item.save(
        update_fields=[
            "status",
            "code",
            "reason",
            "cleaned_file",
            "reviewed_by_id",
            "reviewed_at",
            "updated_at",
        ]
    )
    audit_event_record(
        actor_id=actor_id,
        action="intake.rejected_at_review",
        target=item,
        details={"image": str(image.public_id)},
    )
    return item
