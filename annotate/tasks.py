"""Celery entry points for consensus: thin, idempotent, fetch by id and call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from annotate import consensus, learning
from annotate.models import Dataset
from tessera.errors import ApplicationError

logger = logging.getLogger(__name__)


def _train_if_due(dataset_id: int) -> None:
    if settings.ACTIVE_LEARNING_AUTOTRAIN and learning.model_training_due(dataset_id=dataset_id):
        model_train_task.delay(dataset_id)


@shared_task(acks_late=True)
def consensus_update_task(dataset_id: int) -> int:
    """Incremental update after new labels, then the delayed points it settled; returns the run id."""
    run = consensus.consensus_update(dataset_id=dataset_id)
    consensus.consensus_settle_points(run=run)
    _train_if_due(dataset_id)
    return run.pk


@shared_task(acks_late=True)
def consensus_refit_task(dataset_id: int) -> int:
    """Full refit of one dataset, then the delayed points it settled; returns the run id."""
    run = consensus.consensus_refit(dataset_id=dataset_id)
    consensus.consensus_settle_points(run=run)
    _train_if_due(dataset_id)
    return run.pk


@shared_task
def consensus_refit_all_task() -> list[int]:
    """Scheduled: queue a full refit of every active dataset (keeps incremental updates exact)."""
    ids = list(
        Dataset.objects.filter(is_active=True, task=Dataset.Task.CLASSIFICATION).values_list(
            "id", flat=True
        )
    )
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


@shared_task(acks_late=True)
def model_train_task(dataset_id: int) -> int | None:
    """Train, calibrate and measure a new model version, then store every image's priority.

    Returns the version id, or None when there is not enough to learn from or another
    training of the dataset is running (both recorded, neither an error for the worker).
    """
    try:
        return learning.model_train(dataset_id=dataset_id).pk
    except ApplicationError as exc:
        logger.info("model training of dataset %s skipped: %s", dataset_id, exc.message)
        return None


@shared_task
def model_train_due_all_task() -> list[int]:
    """Scheduled: queue a training for every active dataset whose consensus has grown."""
    due = [
        pk
        for pk in Dataset.objects.filter(
            is_active=True, task=Dataset.Task.CLASSIFICATION
        ).values_list("id", flat=True)
        if learning.model_training_due(dataset_id=pk)
    ]
    for dataset_id in due:
        model_train_task.delay(dataset_id)
    return due


# --- intake quality control ------------------------------------------------------------------------


@shared_task(acks_late=True)
def qc_train_task(dataset_id: int, epochs: int | None = None) -> int | None:
    """Train a dataset's QC detectors on its accepted images; returns the version id, or None
    when another training of the dataset runs or there are too few images (both recorded)."""
    from annotate.qc.training import qc_train

    try:
        version = qc_train(dataset_id=dataset_id, epochs=epochs)
    except ApplicationError as exc:
        logger.info("QC training of dataset %s skipped: %s", dataset_id, exc.message)
        return None
    # The new detectors look at every image: new flags appear, stale ones are marked.
    qc_dataset_score_task.delay(dataset_id)
    return version.pk


@shared_task(acks_late=True)
def qc_image_score_task(image_id: int) -> str | None:
    """Score one stored image (queued by intake after commit); returns its QC state, or None
    when its dataset has no QC model yet."""
    from annotate.qc.scoring import qc_image_score

    qc = qc_image_score(image_id=image_id)
    return qc.state if qc is not None else None


@shared_task(acks_late=True)
def qc_dataset_score_task(dataset_id: int, rescore: bool = False) -> dict:
    """Score every image of a dataset with its latest QC model (resumable batch job)."""
    from dataclasses import asdict

    from annotate.qc.scoring import qc_dataset_score

    return asdict(qc_dataset_score(dataset_id=dataset_id, rescore=rescore))
