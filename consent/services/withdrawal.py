"""Withdrawal: one transaction takes a consent's images out of every pool, queue and export.

Steps (each writes an audit event with ids and counts only):
1. the consent becomes `withdrawn` (with `withdrawn_at`, who, and through which channel);
2. every image of the donor under it becomes `withdrawn` with no file references, so no
   selector serves it (game pools take ACTIVE images only), no image URL returns it
   (`image_get_for_viewing` refuses withdrawn images) and no label for it is accepted;
3. its annotations stop counting (`is_counted=False`);
4. intake items that were live become `withdrawn`; queued ones are cancelled;
5. after commit: the pixel files, thumbnails, de-identified DICOMs and pending uploads are
   deleted, and `withdrawal_followup_task` runs the consensus/export follow-up hook.
Exports exclude the images because `image_queryset_exportable` checks consent at build time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotate.models import Annotation, Image
from consent.models import Consent, Donor, IntakeItem
from consent.services import audit_event_record
from consent.services.consents import revocation_code_matches
from tessera.errors import NotPermitted

logger = logging.getLogger(__name__)

_PENDING = (IntakeItem.Status.QUEUED, IntakeItem.Status.PROCESSING)


@dataclass(frozen=True)
class WithdrawalResult:
    """What one withdrawal changed (ids only)."""

    consent_id: int
    image_ids: tuple[int, ...]
    annotations_uncounted: int
    intake_items_closed: int
    files_scheduled: int
    already_withdrawn: bool = False


def files_delete(*, names: Iterable[str], consent_id: int, actor_id: int | None) -> int:
    """Delete stored files by name (missing ones are fine); audit how many went. Returns count."""
    deleted = 0
    failed = 0
    for name in names:
        try:
            if default_storage.exists(name):
                default_storage.delete(name)
            deleted += 1
        except OSError:
            # The row no longer points at the file; the media sweeper retries orphans.
            logger.exception("could not delete a withdrawn file")
            failed += 1
    audit_event_record(
        actor_id=actor_id,
        action="consent.withdrawal.files_deleted",
        target_type="consent.consent",
        target_id=consent_id,
        details={"files": deleted, "failed": failed},
    )
    return deleted


def consent_withdraw(*, consent_id: int, actor_id: int | None, channel: str) -> WithdrawalResult:
    """Withdraw one consent and everything that depends on it, in one transaction.

    Idempotent: withdrawing an already withdrawn consent changes nothing. Access is checked by
    the caller (selectors `consent_get_for_withdrawal`, or the revocation code service).
    """
    from consent.tasks import withdrawal_followup_task

    with transaction.atomic():
        consent = Consent.objects.select_for_update().get(pk=consent_id)
        if consent.status == Consent.Status.WITHDRAWN:
            return WithdrawalResult(consent.pk, (), 0, 0, 0, already_withdrawn=True)
        now = timezone.now()
        consent.status = Consent.Status.WITHDRAWN
        consent.withdrawn_at = now
        consent.withdrawn_by_id = actor_id
        consent.withdrawal_channel = channel
        consent.save(
            update_fields=[
                "status",
                "withdrawn_at",
                "withdrawn_by_id",
                "withdrawal_channel",
                "updated_at",
            ]
        )
        audit_event_record(
            actor_id=actor_id,
            action="consent.withdrawn",
            target=consent,
            details={"channel": channel, "form": consent.form_id},
        )

        images = list(
            Image.objects.select_for_update()
            .filter(consent=consent)
            .exclude(status=Image.Status.WITHDRAWN)
            .values_list("pk", "file", "thumbnail")
        )
        image_ids = tuple(pk for pk, _, _ in images)
        files = [name for _, f, t in images for name in (f, t) if name]
        Image.objects.filter(pk__in=image_ids).update(
            status=Image.Status.WITHDRAWN, file="", thumbnail="", updated_at=now
        )
        masks = _masks_delete(image_ids)
        files.extend(masks)
        # QC scores describe the pixels; race rooms keep outlines of round and reference images.
        from annotate.models import ImageQc
        from games.contour.services import race_rooms_forget_images

        ImageQc.objects.filter(image_id__in=image_ids).delete()
        race_rooms_forget_images(image_ids=image_ids)
        audit_event_record(
            actor_id=actor_id,
            action="consent.withdrawal.images_removed",
            target=consent,
            details={"images": len(image_ids), "mask_files": len(masks)},
        )

        uncounted = Annotation.objects.filter(image_id__in=image_ids, is_counted=True).update(
            is_counted=False
        )
        audit_event_record(
            actor_id=actor_id,
            action="consent.withdrawal.labels_uncounted",
            target=consent,
            details={"annotations": uncounted},
        )

        # Past exports that hold these images are marked (their researchers are told); every
        # later snapshot leaves them out.
        from annotate.export import exports_mark_withdrawn

        marked = exports_mark_withdrawn(image_ids=list(image_ids))
        audit_event_record(
            actor_id=actor_id,
            action="consent.withdrawal.exports_marked",
            target=consent,
            details={"exports": len(marked)},
        )

        items = IntakeItem.objects.select_for_update().filter(
            Q(image_id__in=image_ids) | Q(batch__consent=consent, status__in=_PENDING)
        )
        closed = 0
        for item in items:
            files.extend(name for name in (item.upload.name, item.cleaned_file.name) if name)
            if item.status in _PENDING:
                item.status = IntakeItem.Status.REJECTED
                item.code = "consent_withdrawn"
                item.reason = "The consent was withdrawn before this file was processed."
            else:
                item.status = IntakeItem.Status.WITHDRAWN
                item.reason = "Withdrawn by the donor; the image was deleted."
            item.upload = ""
            item.cleaned_file = ""
            item.text_boxes = []
            # File names may carry personal data; nothing of the donation is kept.
            item.name = ""
            item.save(
                update_fields=[
                    "status",
                    "code",
                    "reason",
                    "upload",
                    "cleaned_file",
                    "text_boxes",
                    "name",
                    "updated_at",
                ]
            )
            closed += 1
        audit_event_record(
            actor_id=actor_id,
            action="consent.withdrawal.intake_closed",
            target=consent,
            details={"intake_items": closed},
        )

        transaction.on_commit(
            lambda: files_delete(names=files, consent_id=consent.pk, actor_id=actor_id)
        )
        withdrawal_followup_task.delay_on_commit(consent.pk, list(image_ids))
    logger.info("consent %s withdrawn: %d images", consent.pk, len(image_ids))
    return WithdrawalResult(consent.pk, image_ids, uncounted, closed, len(files))


def _masks_delete(image_ids: tuple[int, ...]) -> list[str]:
    """Delete the consensus and gold masks of these images; return their file names.

    A mask traces the donor's anatomy: it is a derivative of the pixels and goes with them.
    """
    from annotate.models import ConsensusMask, GoldMask

    consensus = ConsensusMask.objects.filter(image_id__in=image_ids)
    gold = GoldMask.objects.filter(image_id__in=image_ids)
    names = [name for pair in consensus.values_list("probability", "mask") for name in pair if name]
    names += [name for name in gold.values_list("mask", flat=True) if name]
    consensus.delete()
    gold.delete()
    return names


def donor_withdraw_with_code(
    *, pseudonym: str, code: str, actor_id: int | None = None
) -> list[WithdrawalResult]:
    """Withdraw every consent of a donor who proves it with their revocation code (no account).

    Raises `NotPermitted` with the same message whether the donor or the code is wrong.
    """
    donor = Donor.objects.filter(pseudonym=pseudonym.strip().upper()).first()
    if donor is None or not revocation_code_matches(donor=donor, code=code):
        raise NotPermitted("The donor ID and revocation code do not match.")
    channel = (
        Consent.WithdrawalChannel.COORDINATOR
        if actor_id is not None
        else Consent.WithdrawalChannel.REVOCATION_CODE
    )
    with transaction.atomic():
        ids = list(
            donor.consents.exclude(status=Consent.Status.WITHDRAWN).values_list("pk", flat=True)
        )
        return [consent_withdraw(consent_id=pk, actor_id=actor_id, channel=channel) for pk in ids]


def withdrawal_followup(*, consent_id: int, image_ids: list[int]) -> dict[str, int]:
    """After-commit follow-up of a withdrawal: the hook for consensus and exports.

    Consensus: the withdrawn images' annotations no longer count, so any consensus that used
    them must be recomputed; the consensus issue plugs its recompute here (per affected
    dataset). Exports: past exports that contained these images are marked here by the export
    issue. It records which datasets were affected and queues their full consensus refit.
    """
    from annotate.consensus import consensus_invalidate

    datasets = sorted(
        set(Image.objects.filter(pk__in=image_ids).values_list("dataset_id", flat=True))
    )
    for dataset_id in datasets:
        consensus_invalidate(dataset_id=dataset_id)
    audit_event_record(
        actor_id=None,
        action="consent.withdrawal.followup",
        target_type="consent.consent",
        target_id=consent_id,
        details={"datasets": datasets, "images": len(image_ids)},
    )
    return {"datasets": len(datasets), "images": len(image_ids)}
