"""Stored files that no row names any more: found and deleted by a periodic sweep.

A file is written before the transaction that references it commits (an upload, a mask, an
export) and deleted after the one that dropped it commits. A crash, a rolled-back transaction or a
failed delete between the two leaves a file that no row names. For a withdrawn donor that matters:
the pixels must go even when the delete at withdrawal failed. The sweep collects every name held
by any `FileField` of any installed model, walks the storage, and deletes what no row names and is
older than a grace period, so a file whose row is still being committed is never taken.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.core.files.storage import Storage, default_storage
from django.db import models, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep found (counts only: file names are ids, but nobody needs them here)."""

    scanned: int
    referenced: int
    orphaned: int
    deleted: int
    failed: int
    bytes_freed: int
    dry_run: bool


def files_delete_on_commit(names: list[str]) -> None:
    """Delete replaced files once the transaction that dropped them commits.

    A failed delete is logged and left to the sweep below: the row no longer names the file.
    """

    def delete() -> None:
        for name in names:
            try:
                default_storage.delete(name)
            except OSError:
                logger.exception("could not delete a replaced file")

    transaction.on_commit(delete)


def media_referenced_names() -> set[str]:
    """Every storage name that some row of some installed model points at."""
    names: set[str] = set()
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, models.FileField):
                names.update(
                    model._default_manager.exclude(**{field.attname: ""})
                    .exclude(**{f"{field.attname}__isnull": True})
                    .values_list(field.attname, flat=True)
                    .iterator(chunk_size=5000)
                )
    return names


def _walk(storage: Storage, directory: str = "") -> Iterator[str]:
    try:
        subdirectories, files = storage.listdir(directory)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{directory}/{name}" if directory else name
    for subdirectory in subdirectories:
        yield from _walk(storage, f"{directory}/{subdirectory}" if directory else subdirectory)


def media_sweep(*, grace: timedelta | None = None, dry_run: bool = False) -> SweepResult:
    """Delete stored files that no row names and that are older than `grace`.

    The names are read before the walk, so a file written during the sweep is at worst unnamed
    and young: the grace period (MEDIA_SWEEP_GRACE_HOURS, default 24) keeps it.
    """
    from consent.services import audit_event_record

    grace = grace if grace is not None else timedelta(hours=settings.MEDIA_SWEEP_GRACE_HOURS)
    storage = default_storage
    referenced = media_referenced_names()
    cutoff = timezone.now() - grace
    scanned = orphaned = deleted = failed = freed = 0
    for name in _walk(storage):
        scanned += 1
        if name in referenced:
            continue
        try:
            if storage.get_modified_time(name) > cutoff:
                continue
            size = storage.size(name)
        except FileNotFoundError:
            continue  # deleted by someone else meanwhile
        orphaned += 1
        if dry_run:
            continue
        try:
            storage.delete(name)
        except OSError:
            logger.exception("media sweep: could not delete an orphaned file")
            failed += 1
            continue
        deleted += 1
        freed += size
    result = SweepResult(
        scanned=scanned,
        referenced=len(referenced),
        orphaned=orphaned,
        deleted=deleted,
        failed=failed,
        bytes_freed=freed,
        dry_run=dry_run,
    )
    logger.info("media sweep %s", result)
    if orphaned and not dry_run:
        audit_event_record(
            actor_id=None,
            action="media.sweep",
            target_type="storage",
            details={"orphaned": orphaned, "deleted": deleted, "failed": failed, "bytes": freed},
        )
    return result
