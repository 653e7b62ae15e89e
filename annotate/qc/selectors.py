"""Reads for the QC grid."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from annotate.models import Dataset, Image, ImageQc, QcModelVersion

GRID_LIMIT = 300
REVIEWABLE = (Image.Status.ACTIVE, Image.Status.RETIRED, Image.Status.QUARANTINED)

# CSS preview of each fix on the thumbnail (y axis down: rotate(90deg) turns clockwise).
CSS_TRANSFORM = {
    "rotate_cw_90": "rotate(90deg)",
    "rotate_180": "rotate(180deg)",
    "rotate_ccw_90": "rotate(-90deg)",
    "flip_horizontal": "scaleX(-1)",
    "flip_vertical": "scaleY(-1)",
    "transpose": "rotate(-90deg) scaleX(-1)",
    "antitranspose": "rotate(90deg) scaleX(-1)",
}


@dataclass(frozen=True)
class FlaggedImage:
    qc: ImageQc
    css_transform: str
    css_filter: str


@dataclass(frozen=True)
class QcOverview:
    flagged: list[FlaggedImage]
    n_pending: int
    counts: dict[str, int]
    model: QcModelVersion | None
    training: QcModelVersion | None


def css_preview(transforms: list[str]) -> tuple[str, str]:
    """(CSS transform, CSS filter) showing `transforms` applied, for a thumbnail preview.

    CSS applies the rightmost function first, so the list is composed in reverse order.
    """
    parts = [CSS_TRANSFORM[t] for t in reversed(transforms) if t in CSS_TRANSFORM]
    return " ".join(parts) or "none", "invert(1)" if "invert" in transforms else "none"


def qc_overview(*, dataset: Dataset, limit: int = GRID_LIMIT) -> QcOverview:
    """The dataset's flagged images waiting for review (oldest first), counts per state, and the
    QC model in use. Access is the caller's check (`dataset_get_for_qc`)."""
    # A flag on an image that left meanwhile (withdrawn, rejected at the intake text check) is moot.
    pending = ImageQc.objects.filter(
        dataset=dataset, state=ImageQc.State.PENDING, image__status__in=REVIEWABLE
    )
    rows = list(pending.select_related("image").order_by("created_at", "id")[:limit])
    counts = dict(
        ImageQc.objects.filter(dataset=dataset).values_list("state").annotate(n=Count("id"))
    )
    counts[ImageQc.State.PENDING] = pending.count()
    models = QcModelVersion.objects.filter(dataset=dataset)
    return QcOverview(
        flagged=[FlaggedImage(qc, *css_preview(list(qc.suggested_fix))) for qc in rows],
        n_pending=counts.get(ImageQc.State.PENDING, 0),
        counts={state.label: counts.get(state.value, 0) for state in ImageQc.State},
        model=models.filter(status=QcModelVersion.Status.READY).first(),
        training=models.filter(status=QcModelVersion.Status.TRAINING).first(),
    )
