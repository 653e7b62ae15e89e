"""Score images with their dataset's latest QC model; quarantine what is flagged, never alter it.

Runs in Celery workers (torch through ``ml.qc``, imported inside the functions). A flagged image
in play goes to `Image.Status.QUARANTINED` (so no game serves it: games only draw ACTIVE images)
with one open `quarantine` review item carrying the reasons and the suggested fix. Pixels change
only when a reviewer accepts the fix (`annotate.qc.services.qc_resolve`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

from annotate.models import Dataset, Image, ImageQc, QcModelVersion, ReviewItem
from annotate.qc.pixels import read_for_qc
from consent.services import audit_event_record

if TYPE_CHECKING:
    from ml.qc import QcModel, QcScores

logger = logging.getLogger(__name__)

# Images that can carry a flag: in play, retired (a batch over an existing dataset), or already
# quarantined at intake (burned-in text: the flag is added, the intake check still applies).
SCORABLE = (Image.Status.ACTIVE, Image.Status.RETIRED, Image.Status.QUARANTINED)
DECIDED = (ImageQc.State.FIXED, ImageQc.State.KEPT, ImageQc.State.UNUSABLE)
QC_REVIEW_PRIORITY = 0.5
BATCH_SIZE = 64
ORIENTATION_DETECTORS = ("rotation", "flip")

# Loaded models per worker process, by version id (versions are immutable once ready).
_MODELS: dict[int, QcModel] = {}


def qc_model_latest(*, dataset_id: int) -> QcModelVersion | None:
    """The dataset's newest ready QC model version, or None."""
    return (
        QcModelVersion.objects.filter(dataset_id=dataset_id, status=QcModelVersion.Status.READY)
        .exclude(file="")
        .first()
    )


def _load(version: QcModelVersion) -> QcModel:
    model = _MODELS.get(version.pk)
    if model is None:
        import tempfile
        from pathlib import Path

        from ml.qc.model import load_qc

        with tempfile.TemporaryDirectory() as tmp, version.file.open("rb") as handle:
            path = Path(tmp) / "qc.pt"
            path.write_bytes(handle.read())
            model = load_qc(path)
        _MODELS.clear()  # one dataset's model at a time is plenty for a worker
        _MODELS[version.pk] = model
    return model


@dataclass(frozen=True)
class SuggestedFix:
    transforms: list[str]
    text: str


def suggested_fix(flags: Iterable[Any]) -> SuggestedFix:
    """The transforms that undo what the flags say, in order (orientation, then intensity).

    The eight orientations are exclusive: when both the rotation and the flip detector fire, the
    one further above its threshold gives the fix. An OOD flag has no fix.
    """
    from ml.qc.transforms import FIX_TEXT

    flags = list(flags)
    transforms = []
    orientation = [f for f in flags if f.detector in ORIENTATION_DETECTORS and f.fix]
    if orientation:
        transforms.append(max(orientation, key=lambda f: f.score - f.threshold).fix)
    if any(f.detector == "inversion" for f in flags):
        transforms.append("invert")
    return SuggestedFix(transforms, "; then ".join(FIX_TEXT[t] for t in transforms))


def _record(image: Image, version: QcModelVersion, scores: QcScores) -> ImageQc:
    """Store one image's scores; flag it (quarantine + review item) unless a reviewer decided."""
    from annotate.review.services import review_item_open

    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        qc = ImageQc.objects.select_for_update().filter(image=image).first() or ImageQc(
            image=image, dataset_id=image.dataset_id
        )
        qc.qc_model = version
        qc.p_rotated, qc.rotation_deg_cw = scores.p_rotated, scores.rotation_deg_cw
        qc.p_flipped, qc.flip_axis = scores.p_flipped, scores.flip_axis or ""
        qc.p_inverted, qc.ood_score = scores.p_inverted, scores.ood_score
        qc.scores = scores.to_dict()
        # A reviewer's decision stands; a pending flag waits for one (never auto-released).
        flag = scores.flagged and qc.state not in DECIDED and image.status in SCORABLE
        if flag:
            fix = suggested_fix(scores.flags)
            qc.reasons = [
                {
                    "detector": f.detector,
                    "reason": f.reason,
                    "score": f.score,
                    "threshold": f.threshold,
                }
                for f in scores.flags
            ]
            qc.suggested_fix, qc.fix_text = fix.transforms, fix.text
            qc.state = ImageQc.State.PENDING
        elif qc.state == ImageQc.State.CLEAR:
            qc.reasons, qc.suggested_fix, qc.fix_text = [], [], ""
        elif qc.state == ImageQc.State.PENDING:
            # Still waiting for a reviewer, who should know that a newer model sees no problem.
            qc.scores["cleared_by_version"] = version.version
        qc.save()
        if not flag:
            return qc
        if image.status == Image.Status.ACTIVE:
            image.status = Image.Status.QUARANTINED
            image.save(update_fields=["status", "updated_at"])
        review_item_open(
            image=image,
            reason=ReviewItem.Reason.QUARANTINE,
            priority=QC_REVIEW_PRIORITY,
            details={
                "source": "qc",
                "qc": {
                    "reasons": [r["reason"] for r in qc.reasons],
                    "detectors": [r["detector"] for r in qc.reasons],
                    "suggested_fix": qc.suggested_fix,
                    "fix_text": qc.fix_text,
                    "model_version": version.version,
                },
            },
        )
        audit_event_record(
            actor_id=None,
            action="qc.flagged",
            target=image,
            details={
                "image": str(image.public_id),
                "detectors": [r["detector"] for r in qc.reasons],
                "suggested_fix": qc.suggested_fix,
                "qc_model": version.pk,
            },
        )
    return qc


def _read(image: Image):  # type: ignore[no-untyped-def]
    with image.file.open("rb") as handle:
        return read_for_qc(handle)


def qc_image_score(*, image_id: int) -> ImageQc | None:
    """Score one stored image (the intake hook). None when its dataset has no ready QC model
    yet, or the image has no pixels or is not in a scorable state."""
    image = Image.objects.filter(pk=image_id, status__in=SCORABLE).exclude(file="").first()
    if image is None:
        return None
    version = qc_model_latest(dataset_id=image.dataset_id)
    if version is None:
        return None
    import torch

    # One small forward pass: extra intra-op threads only contend for the cores (on a busy
    # 2-core machine two threads made the p95 15-20x worse, docs/benchmarks.md).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        scores = _load(version).score([_read(image)])[0]
    finally:
        torch.set_num_threads(threads)
    return _record(image, version, scores)


@dataclass(frozen=True)
class BatchResult:
    n_scored: int
    n_flagged: int
    seconds: float
    model_version: int | None


def qc_dataset_score(
    *, dataset_id: int, rescore: bool = False, batch_size: int = BATCH_SIZE
) -> BatchResult:
    """Score every scorable image of a dataset with its latest QC model, in batches.

    Without `rescore`, images already scored by that model version are skipped, so a batch job
    that died half-way resumes where it stopped. Images a reviewer decided keep their decision.
    """
    import torch

    started = time.perf_counter()
    dataset = Dataset.objects.get(pk=dataset_id)
    version = qc_model_latest(dataset_id=dataset.pk)
    if version is None:
        return BatchResult(0, 0, 0.0, None)
    model = _load(version)
    images = Image.objects.filter(dataset=dataset, status__in=SCORABLE).exclude(file="")
    if not rescore:
        images = images.exclude(qc__qc_model=version)
    ids = list(images.order_by("id").values_list("id", flat=True))
    n_flagged = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.TORCH_THREADS)
    try:
        for start in range(0, len(ids), batch_size):
            chunk = list(
                Image.objects.filter(pk__in=ids[start : start + batch_size]).order_by("id")
            )
            arrays = [_read(image) for image in chunk]
            for image, scores in zip(chunk, model.score(arrays), strict=True):
                qc = _record(image, version, scores)
                n_flagged += qc.state == ImageQc.State.PENDING and scores.flagged
    finally:
        torch.set_num_threads(threads)
    result = BatchResult(len(ids), int(n_flagged), time.perf_counter() - started, version.version)
    audit_event_record(
        actor_id=None,
        action="qc.dataset_scored",
        target=dataset,
        details={"images": result.n_scored, "flagged": result.n_flagged, "qc_model": version.pk},
    )
    logger.info("qc batch %s: %s images, %s flagged", dataset.slug, result.n_scored, n_flagged)
    return result
