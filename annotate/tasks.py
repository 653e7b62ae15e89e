"""Celery entry points for consensus: thin, idempotent, fetch by id and call a service."""

from __future__ import annotations

from celery import shared_task

from annotate import consensus
from annotate.models import Dataset


@shared_task(acks_late=True)
def consensus_update_task(dataset_id: int) -> int:
    """Incremental update after new labels, then the delayed points it settled; returns the run id."""
    run = consensus.consensus_update(dataset_id=dataset_id)
    consensus.consensus_settle_points(run=run)
    return run.pk


@shared_task(acks_late=True)
def consensus_refit_task(dataset_id: int) -> int:
    """Full refit of one dataset, then the delayed points it settled; returns the run id."""
    run = consensus.consensus_refit(dataset_id=dataset_id)
    consensus.consensus_settle_points(run=run)
    return run.pk


@shared_task
def consensus_refit_all_task() -> list[int]:
    """Scheduled: queue a full refit of every active dataset (keeps incremental updates exact)."""
    ids = list(Dataset.objects.filter(is_active=True).values_list("id", flat=True))
    for dataset_id in ids:
        consensus_refit_task.delay(dataset_id)
    return ids


@shared_task(acks_late=True)
def consensus_mask_update_task(image_id: int) -> bool:
    """STAPLE over the contours of one image; returns whether a consensus mask exists now."""
    return consensus.consensus_mask_update(image_id=image_id) is not None


@shared_task(acks_late=True)
def export_build_task(export_id: int) -> str:
    """Build one requested export snapshot; returns its status."""
    from annotate.export import export_build

    return export_build(export_id=export_id).status
