"""Train a dataset's QC detectors on its own accepted images (Celery worker only: torch inside).

What counts as accepted: images in play or retired, minus everything someone doubted: images
waiting on a QC flag, images with an open player report or quarantine item, and images confirmed
unusable. Images whose flag a reviewer settled as a false alarm (`kept`) or fixed (`fixed`) are
accepted again. Confirmed-bad images (unusable, pixels still stored: a player report or a QC flag
a reviewer upheld) are real positives the synthetic corruptions cannot give: the new model scores
them and records how many it flags (`metrics["known_bad"]`), next to its synthetic validation AUC.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from annotate.models import Dataset, Image, ImageQc, QcModelVersion, ReviewItem
from annotate.qc.pixels import read_for_qc
from tessera.errors import ApplicationError, Conflict

logger = logging.getLogger(__name__)

MIN_QC_IMAGES = 20
MAX_QC_IMAGES = 3000
MAX_KNOWN_BAD = 500
QC_EPOCHS = 30
QC_TARGET_FPR = 0.01
# Whole donors go to the calibration split only when there are enough of them.
MIN_GROUPS = 5


def qc_training_images(*, dataset: Dataset) -> tuple[list[Image], int]:
    """(accepted images to train on, at most `MAX_QC_IMAGES`; how many candidates were left out).

    Ordered by public id (random UUIDs), so a capped set is a uniform sample that stays stable.
    """
    candidates = Image.objects.filter(
        dataset=dataset, status__in=(Image.Status.ACTIVE, Image.Status.RETIRED)
    ).exclude(file="")
    doubted = Exists(
        ReviewItem.objects.filter(
            image=OuterRef("pk"),
            status=ReviewItem.Status.OPEN,
            reason__in=(ReviewItem.Reason.REPORTED, ReviewItem.Reason.QUARANTINE),
        )
    ) | Exists(
        ImageQc.objects.filter(
            image=OuterRef("pk"), state__in=(ImageQc.State.PENDING, ImageQc.State.UNUSABLE)
        )
    )
    accepted = candidates.exclude(doubted).order_by("public_id")
    n_candidates = candidates.count()
    images = list(accepted[:MAX_QC_IMAGES])
    n_accepted = accepted.count()
    return images, n_candidates - n_accepted


def qc_known_bad_images(*, dataset: Dataset) -> list[Image]:
    """Images reviewers confirmed unusable whose pixels are still stored."""
    return list(
        Image.objects.filter(dataset=dataset, status=Image.Status.UNUSABLE)
        .exclude(file="")
        .order_by("public_id")[:MAX_KNOWN_BAD]
    )


def _read(image: Image):  # type: ignore[no-untyped-def]
    with image.file.open("rb") as handle:
        return read_for_qc(handle)


def qc_train(
    *,
    dataset_id: int,
    epochs: int | None = None,
    seed: int = 0,
    target_fpr: float = QC_TARGET_FPR,
) -> QcModelVersion:
    """Train, calibrate and store a new QC model version of a dataset.

    One training per dataset at a time (a database constraint): a second raises `Conflict`.
    Too few accepted images raises `ApplicationError`; both failures are recorded on the version.
    """
    import torch

    from ml.qc.model import train_qc

    dataset = Dataset.objects.get(pk=dataset_id)
    try:
        with transaction.atomic():
            latest = QcModelVersion.objects.filter(dataset=dataset).aggregate(v=Max("version"))
            version = QcModelVersion.objects.create(
                dataset=dataset,
                version=(latest["v"] or 0) + 1,
                started_at=timezone.now(),
                target_fpr=target_fpr,
            )
    except IntegrityError:
        raise Conflict("QC detectors of this dataset are already training.") from None

    try:
        images, n_excluded = qc_training_images(dataset=dataset)
        if len(images) < MIN_QC_IMAGES:
            raise ApplicationError(
                f"Not enough accepted images to train QC detectors: {len(images)} "
                f"(need {MIN_QC_IMAGES})."
            )
        arrays = [_read(image) for image in images]
        donors = [str(image.donor_id) for image in images]
        groups = donors if len(set(donors)) >= MIN_GROUPS else None
        threads = torch.get_num_threads()
        torch.set_num_threads(settings.TORCH_THREADS)
        try:
            model = train_qc(
                arrays,
                groups=groups,
                seed=seed,
                epochs=epochs or QC_EPOCHS,
                target_fpr=target_fpr,
            )
            known_bad = qc_known_bad_images(dataset=dataset)
            bad_scores = model.score([_read(image) for image in known_bad]) if known_bad else []
        finally:
            torch.set_num_threads(threads)
        info = model.info
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "qc.pt"
            model.save(path)
            version.file.save("qc.pt", ContentFile(path.read_bytes()), save=False)
        version.enabled = dict(info.enabled)
        version.thresholds = {k: float(v) for k, v in info.thresholds.items()}
        version.n_images = len(images)
        version.n_excluded = n_excluded
        version.metrics = {
            "validation_auc": {k: float(v) for k, v in info.validation_auc.items()},
            "n_train": info.n_train,
            "n_calibration": info.n_calibration,
            "epochs": info.epochs,
            "train_seconds": round(info.train_seconds, 2),
            "grouped_by_donor": groups is not None,
            "known_bad": {
                "n": len(bad_scores),
                "n_flagged": sum(1 for s in bad_scores if s.flagged),
            },
        }
        version.status = QcModelVersion.Status.READY
        version.finished_at = timezone.now()
        version.save()
    except Exception as exc:
        message = (
            exc.message if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
        )
        QcModelVersion.objects.filter(pk=version.pk).update(
            status=QcModelVersion.Status.FAILED, error=message[:2000], finished_at=timezone.now()
        )
        raise
    logger.info(
        "qc model %s of dataset %s ready: %s images, enabled %s",
        version.version,
        dataset.slug,
        version.n_images,
        version.enabled,
    )
    return version
