"""Writes for researcher exports: request, build (the Celery task's body), withdrawal marks."""

from __future__ import annotations

import hashlib
import logging
import tempfile

from django.core.files import File
from django.db import transaction
from django.db.models import Count, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.access import access_require_role
from accounts.roles import Role
from annotate.export.builder import FORMATS, build_archive
from annotate.export.selection import ExportFilters, export_rows
from annotate.models import Dataset, Export, ExportItem, Image
from consent.services import audit_event_record
from tessera.errors import ApplicationError
from tessera.realtime import broadcast_on_commit, user_group

logger = logging.getLogger(__name__)

EXPORT_ROLES = (Role.RESEARCHER, Role.ADMIN)


def _check_filters(dataset: Dataset, filters: ExportFilters, fmt: str) -> None:
    if fmt not in FORMATS:
        raise ApplicationError(f"Format must be one of {', '.join(FORMATS)}.")
    unknown = set(filters.classes) - set(dataset.classes.values_list("code", flat=True))
    if unknown:
        raise ApplicationError(
            f"{dataset.name} has no class {', '.join(sorted(unknown))}.",
            extra={"classes": sorted(unknown)},
        )
    if not 0.0 <= filters.min_confidence <= 1.0:
        raise ApplicationError("Minimum confidence must be between 0 and 1.")
    if filters.min_labels < 0:
        raise ApplicationError("Minimum number of labels cannot be negative.")


def export_request(  # type: ignore[no-untyped-def]
    *, user, dataset: Dataset, filters: ExportFilters, fmt: str = "all", queue: bool = True
) -> Export:
    """Record a new snapshot of `dataset` (next version) and queue its build after commit.

    `user` None is the command line (`manage.py export_dataset`), which builds in-process
    (`queue=False`). Researchers and admins only. Audited.
    """
    if user is not None:
        access_require_role(user, *EXPORT_ROLES)
    _check_filters(dataset, filters, fmt)
    with transaction.atomic():
        # The dataset row serialises version numbers; the unique constraint backs it up.
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        last = Export.objects.filter(dataset=dataset).aggregate(v=Max("version"))["v"] or 0
        export = Export.objects.create(
            dataset=dataset,
            version=last + 1,
            format=fmt,
            filters=filters.as_json(),
            created_by=user,
        )
        audit_event_record(
            actor_id=user.pk if user is not None else None,
            action="export.requested",
            target=export,
            details={"dataset": dataset.slug, "version": export.version, **filters.as_json()},
        )
        if queue:
            from annotate.tasks import export_build_task

            export_build_task.delay_on_commit(export.pk)
    return export


def export_build(*, export_id: int) -> Export:
    """Build a pending export once: select the rows (consent checked now), write the archive,
    store it with its SHA-256, record its items. Idempotent: a second call is a no-op.

    Progress goes to `Export.progress` while the archive is written (the page polls it); the
    requester gets a notification when it is ready or failed.
    """
    now = timezone.now()
    if not Export.objects.filter(pk=export_id, status=Export.Status.PENDING).update(
        status=Export.Status.BUILDING, started_at=now, progress=0.0
    ):
        return Export.objects.get(pk=export_id)
    export = Export.objects.select_related("dataset").get(pk=export_id)
    try:
        _build(export, now)
    except Exception as exc:  # noqa: BLE001 - any failure must end as a visible "failed" export
        logger.exception("export %s failed", export_id)
        Export.objects.filter(pk=export_id).update(
            status=Export.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        with transaction.atomic():
            _notify(export, f"Export v{export.version} of {export.dataset.name} failed.")
    return Export.objects.get(pk=export_id)


def _build(export: Export, now) -> None:  # type: ignore[no-untyped-def]
    filters = ExportFilters.from_json(export.filters)
    rows = export_rows(dataset=export.dataset, filters=filters, at=now)

    def progress(done: int, total: int) -> None:
        # Autocommit: the page polling this export sees it move.
        Export.objects.filter(pk=export.pk).update(progress=round(0.95 * done / total, 4))

    with tempfile.TemporaryFile() as handle:
        result = build_archive(
            handle,
            dataset=export.dataset,
            rows=rows,
            filters=filters,
            fmt=export.format,
            version=export.version,
            when=now,
            progress=progress,
        )
        handle.seek(0)
        digest, size = hashlib.sha256(), 0
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
        handle.seek(0)
        with transaction.atomic():
            export.file.save(f"v{export.version}.zip", File(handle, name="export.zip"), save=False)
            export.sha256, export.size, export.counts = digest.hexdigest(), size, result.counts
            export.status, export.progress, export.finished_at = (
                Export.Status.READY,
                1.0,
                timezone.now(),
            )
            export.save(
                update_fields=[
                    "file",
                    "sha256",
                    "size",
                    "counts",
                    "status",
                    "progress",
                    "finished_at",
                    "updated_at",
                ]
            )
            ExportItem.objects.bulk_create(
                [
                    ExportItem(
                        export=export,
                        image=row.image,
                        public_id=row.image.public_id,
                        label=row.label,
                        source=row.source,
                    )
                    for row in rows
                ],
                batch_size=2000,
            )
            audit_event_record(
                actor_id=export.created_by_id,
                action="export.built",
                target=export,
                details={"sha256": export.sha256, "images": len(rows)},
            )
            _notify(
                export,
                f"Export v{export.version} of {export.dataset.name} is ready ({len(rows)} images).",
            )
    logger.info("export %s v%s built: %s images", export.dataset.slug, export.version, len(rows))


def _notify(export: Export, text: str) -> None:
    if export.created_by_id is not None:
        broadcast_on_commit(
            user_group(export.created_by_id),
            "notify",
            {"text": text, "kind": "export", "export": export.pk, "status": export.status},
        )


@transaction.atomic
def exports_mark_withdrawn(*, image_ids: list[int]) -> list[int]:
    """A donor withdrew: mark every export that holds one of `image_ids`.

    The affected items get `withdrawn_at`; each export records when it was first affected and
    how many of its items are withdrawn; the researchers who asked are notified. The builder
    leaves marked images out of every later snapshot. Returns the affected export ids.
    Call it inside the withdrawal transaction (the integrator wires it).
    """
    now = timezone.now()
    items = ExportItem.objects.filter(image_id__in=image_ids, withdrawn_at__isnull=True)
    export_ids = sorted(set(items.values_list("export_id", flat=True)))
    if not export_ids:
        return []
    items.update(withdrawn_at=now)
    counts = dict(
        ExportItem.objects.filter(export_id__in=export_ids)
        .values_list("export_id")
        .annotate(n=Count("id", filter=Q(withdrawn_at__isnull=False)))
    )
    for export in Export.objects.filter(pk__in=export_ids).select_related("dataset"):
        Export.objects.filter(pk=export.pk).update(
            n_withdrawn=counts.get(export.pk, 0), withdrawn_at=Coalesce("withdrawn_at", now)
        )
        audit_event_record(
            actor_id=None,
            action="export.withdrawal_marked",
            target=export,
            details={
                "images": sorted(int(i) for i in image_ids),
                "n_withdrawn": counts.get(export.pk, 0),
            },
        )
        _notify(
            export,
            f"A donor withdrew consent: {counts.get(export.pk, 0)} image(s) of export "
            f"v{export.version} of {export.dataset.name} must no longer be used.",
        )
    logger.info("withdrawal of %s image(s) marked %s export(s)", len(image_ids), len(export_ids))
    return export_ids


def export_withdrawn_image_ids(*, export: Export) -> list[int]:
    """Ids of the images of `export` that a withdrawal marked (for tests and the admin)."""
    return list(
        Image.objects.filter(export_items__export=export, export_items__withdrawn_at__isnull=False)
        .order_by("id")
        .values_list("id", flat=True)
    )
