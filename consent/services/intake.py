"""Intake: accept an upload under a consent, then de-identify it in a task, file by file.

The request only stores the uploaded bytes in a private temp area under MEDIA_ROOT and queues
one task per file after commit. The task runs `consent.deid.pipeline.process_upload` (the pure
pipeline, the same code as `manage.py deidentify`), stores what was cleaned as an `Image`
(ACTIVE, or QUARANTINED when it may carry burned-in text), records per file why anything
was refused, and always deletes the upload.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image as PILImage

from accounts.models import User
from annotate.models import Dataset, Image
from annotate.services import CleanImage, image_create
from consent.deid import Limits, Outcome, Processed, process_upload
from consent.deid.archive import display_name
from consent.deid.hashing import NEAR_DUPLICATE_BITS, hamming
from consent.deid.sniff import ZIP_SIGNATURES
from consent.models import Consent, IntakeBatch, IntakeItem, Purpose
from consent.services import audit_event_record
from tessera.errors import ApplicationError, Conflict
from tessera.realtime import broadcast_on_commit, user_group

logger = logging.getLogger(__name__)

MAX_FILES_PER_BATCH = 200
UNEXPECTED = "The file could not be processed because of an unexpected error."


def intake_limits() -> Limits:
    """The pipeline limits for web intake (`INTAKE_OCR_ENABLED` can turn OCR off)."""
    return Limits(ocr_enabled=getattr(settings, "INTAKE_OCR_ENABLED", True))


def consent_check_permits_intake(consent: Consent) -> None:
    """Raise unless `consent` is in force and permits labelling in games."""
    if not consent.is_in_force():
        raise Conflict("This consent is not active, so no images can be added under it.")
    if not consent.permits(Purpose.ANNOTATION):
        raise Conflict("This consent does not permit labelling in games.")


@transaction.atomic
def intake_batch_create(
    *,
    uploaded_by: User | None,
    consent: Consent,
    dataset: Dataset,
    files: Sequence[UploadedFile],
) -> IntakeBatch:
    """Hold the uploaded files until the task runs and queue one task per file after commit.

    Access to `consent` is the caller's check (selector `consent_get_for_upload`);
    `uploaded_by` is None only for the demo loader.
    """
    consent = Consent.objects.select_for_update().get(pk=consent.pk)
    consent_check_permits_intake(consent)
    if not dataset.is_active:
        raise ApplicationError("This dataset does not take new images.", extra={"field": "dataset"})
    if not files:
        raise ApplicationError("Choose at least one file.", extra={"field": "files"})
    if len(files) > MAX_FILES_PER_BATCH:
        raise ApplicationError(
            f"Upload at most {MAX_FILES_PER_BATCH} files at a time (or put them in a zip).",
            extra={"field": "files"},
        )
    limit = intake_limits().max_bytes
    if any(f.size is None or f.size > limit for f in files):
        raise ApplicationError(
            f"Each file must be smaller than {limit // (1024 * 1024)} MB.", extra={"field": "files"}
        )
    batch = IntakeBatch.objects.create(
        donor_id=consent.donor_id, consent=consent, dataset=dataset, uploaded_by=uploaded_by
    )
    items = []
    for position, upload in enumerate(files):
        item = IntakeItem(batch=batch, position=position, name=display_name(upload.name or ""))
        item.upload.save("upload", upload, save=False)
        item.save()
        items.append(item)
    audit_event_record(
        actor_id=uploaded_by.pk if uploaded_by is not None else None,
        action="intake.batch_created",
        target=batch,
        details={"consent": consent.pk, "dataset": dataset.slug, "files": len(items)},
    )
    from consent.tasks import intake_item_process_task

    for item in items:
        intake_item_process_task.delay_on_commit(item.pk)
    return batch


def intake_item_process(*, item_id: int) -> None:
    """De-identify one uploaded file (or zip) and store the result. Never raises on bad input.

    Idempotent: an item that is not `queued` any more is left alone (a redelivered task).
    """
    with transaction.atomic():
        item = (
            IntakeItem.objects.select_for_update()
            .select_related("batch__consent", "batch__donor", "batch__dataset")
            .filter(pk=item_id, status=IntakeItem.Status.QUEUED)
            .first()
        )
        if item is None:
            return
        item.status = IntakeItem.Status.PROCESSING
        item.save(update_fields=["status", "updated_at"])
    upload_name = item.upload.name
    try:
        _process(item)
    except Exception:  # noqa: BLE001 - the worker must survive any input and record why
        logger.exception("intake item %s failed", item.pk)
        _finish(item, IntakeItem.Status.REJECTED, reason=UNEXPECTED, code="processing_error")
    finally:
        if upload_name:
            try:
                default_storage.delete(upload_name)
            except OSError:
                logger.exception("could not delete an intake upload")
        IntakeItem.objects.filter(pk=item.pk).update(upload="")
    _notify_progress(item.batch)


def _process(item: IntakeItem) -> None:
    batch = item.batch
    consent = Consent.objects.get(pk=batch.consent_id)
    try:
        consent_check_permits_intake(consent)
    except Conflict as exc:
        _finish(item, IntakeItem.Status.REJECTED, reason=exc.message, code="consent_inactive")
        return
    with item.upload.open("rb") as handle:
        data = handle.read()
    outcomes = process_upload(
        data,
        filename_hint=item.name,
        donor_key=batch.donor.pseudonym,
        secret=settings.DEID_SECRET.encode(),
        limits=intake_limits(),
    )
    is_archive = data.startswith(ZIP_SIGNATURES)
    del data
    archive_refused = (
        len(outcomes) == 1 and outcomes[0].rejected is not None and outcomes[0].name == item.name
    )
    if not is_archive or archive_refused:
        _store(item, outcomes[0])
        return
    _finish(
        item,
        IntakeItem.Status.UNPACKED,
        reason=f"Archive with {len(outcomes)} file{'s' if len(outcomes) != 1 else ''}.",
    )
    for outcome in outcomes:
        child = IntakeItem.objects.create(
            batch=batch,
            parent=item,
            position=item.position,
            name=display_name(outcome.name),
            status=IntakeItem.Status.PROCESSING,
        )
        try:
            _store(child, outcome)
        except Exception:  # noqa: BLE001 - one bad member must not stop the others
            logger.exception("intake member %s failed", child.pk)
            _finish(child, IntakeItem.Status.REJECTED, reason=UNEXPECTED, code="processing_error")


def _finish(item: IntakeItem, status: str, *, reason: str = "", code: str = "", **fields) -> None:  # type: ignore[no-untyped-def]
    item.status = status
    item.reason = reason[:300]
    item.code = code
    item.processed_at = timezone.now()
    for name, value in fields.items():
        setattr(item, name, value)
    item.save(update_fields=["status", "reason", "code", "processed_at", "updated_at", *fields])


def _store(item: IntakeItem, outcome: Outcome) -> None:
    if outcome.processed is None:
        rejected = outcome.rejected
        _finish(
            item,
            IntakeItem.Status.REJECTED,
            reason=rejected.reason if rejected else "The file was not processed.",
            code=rejected.code if rejected else "unknown",
        )
        return
    processed = outcome.processed
    try:
        with transaction.atomic():
            _store_processed(item, processed)
    except IntegrityError:
        # Another upload stored the same bytes between our check and our insert.
        _finish(item, IntakeItem.Status.REJECTED, **_duplicate(processed))
    except Conflict as exc:
        _finish(item, IntakeItem.Status.REJECTED, reason=exc.message, code=exc.extra["code"])


def _duplicate(processed: Processed) -> dict[str, str]:
    return {
        "reason": "An identical image is already on Tessera, so this copy was not added.",
        "code": "duplicate",
        "sha256": processed.sha256,
    }


def _store_processed(item: IntakeItem, processed: Processed) -> None:
    batch = item.batch
    # Locking the consent serialises intake with a withdrawal of the same consent.
    consent = Consent.objects.select_for_update().get(pk=batch.consent_id)
    if not consent.is_in_force():
        raise Conflict(
            "The consent was withdrawn before this file was stored.",
            extra={"code": "consent_inactive"},
        )
    duplicates = Image.objects.filter(sha256=processed.sha256).exclude(file="")
    if duplicates.exclude(status=Image.Status.WITHDRAWN).exists():
        raise Conflict(_duplicate(processed)["reason"], extra={"code": "duplicate"})
    near = near_duplicate_of(dataset_id=batch.dataset_id, phash=processed.phash)
    flags = list(processed.flags) + (["near_duplicate"] if near is not None else [])
    status = Image.Status.QUARANTINED if processed.needs_review else Image.Status.ACTIVE
    image = image_create(
        dataset=batch.dataset,
        consent=consent,
        clean=_clean_image(processed),
        status=status,
        actor_id=batch.uploaded_by_id,
    )
    if processed.kind == "dicom":
        item.cleaned_file.save("cleaned.dcm", ContentFile(processed.cleaned), save=False)
    from annotate.tasks import qc_image_score_task

    # Intake QC (annotate.qc): score the stored image once it is committed; a flag quarantines it.
    qc_image_score_task.delay_on_commit(image.pk)
    _finish(
        item,
        IntakeItem.Status.QUARANTINED
        if status == Image.Status.QUARANTINED
        else IntakeItem.Status.ACCEPTED,
        reason=_accepted_reason(processed, near is not None),
        image=image,
        kind=processed.kind,
        flags=flags,
        text_boxes=[_box(b) for b in processed.text_boxes],
        sha256=processed.sha256,
        phash=processed.phash,
        near_duplicate_of=near,
        cleaned_file=item.cleaned_file,
    )
    audit_event_record(
        actor_id=batch.uploaded_by_id,
        action="intake.item_stored",
        target=item,
        details={"image": str(image.public_id), "status": status, "flags": flags},
    )


def _accepted_reason(processed: Processed, near: bool) -> str:
    parts = []
    if processed.needs_review:
        parts.append("It may show burned-in text, so a coordinator checks it before it is played.")
    else:
        parts.append("De-identified and added to the games.")
    if near:
        parts.append("It looks very similar to an image already in this dataset.")
    return " ".join(parts)


def _box(box) -> dict[str, float | int]:  # type: ignore[no-untyped-def]
    return {
        "left": box.left,
        "top": box.top,
        "width": box.width,
        "height": box.height,
        "confidence": round(box.confidence, 1),
    }


def near_duplicate_of(*, dataset_id: int, phash: str) -> Image | None:
    """The first live image of the dataset whose perceptual hash is within the near-duplicate
    distance of `phash`. A linear scan over the dataset's intake hashes (fine for thousands;
    a BK-tree or hash-prefix buckets would be the next step)."""
    candidates = (
        IntakeItem.objects.filter(batch__dataset_id=dataset_id, status__in=IntakeItem.LIVE)
        .exclude(phash="")
        .values_list("image_id", "phash")
    )
    for image_id, other in candidates.iterator():
        if len(other) == len(phash) and hamming(other, phash) <= NEAR_DUPLICATE_BITS:
            return Image.objects.get(pk=image_id)
    return None


def _clean_image(processed: Processed) -> CleanImage:
    """What `image_create` stores: the displayable image and a JPEG thumbnail."""
    if processed.kind == "dicom":
        if processed.derivative_webp is not None:
            content, extension = processed.derivative_webp, "webp"
        else:
            content, extension = processed.derivative_png, "png"
    else:
        content, extension = processed.cleaned, processed.extension.lstrip(".")
    return CleanImage(
        content=content,
        extension=extension,
        thumbnail=thumbnail_jpeg(processed.thumbnail_png),
        width=processed.width,
        height=processed.height,
        sha256=processed.sha256,
        phash=processed.phash,
        frames=processed.frames,
        modality=processed.modality or "",
    )


def thumbnail_jpeg(png: bytes) -> bytes:
    """The pipeline's PNG thumbnail as JPEG (`image_create` names thumbnails `.jpg`)."""
    with PILImage.open(io.BytesIO(png)) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def _notify_progress(batch: IntakeBatch) -> None:
    if batch.uploaded_by_id is None:
        return
    from consent.selectors import intake_batch_progress

    progress = intake_batch_progress(batch=batch)
    payload = {"kind": "intake", "batch": str(batch.public_id), **progress["counts"]}
    if progress["finished"]:
        payload["text"] = (
            f"Upload processed: {progress['counts']['accepted']} accepted, "
            f"{progress['counts']['quarantined']} waiting for review, "
            f"{progress['counts']['rejected']} rejected."
        )
    broadcast_on_commit(user_group(batch.uploaded_by_id), "notify", payload)
