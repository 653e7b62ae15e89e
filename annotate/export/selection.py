"""Which images an export holds and what it says about each: consent filter and label rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import QuerySet

from annotate.models import Dataset, GoldMask, Image, ReviewDecision, ReviewItem
from consent.models import Purpose

# Images that still carry labels worth exporting (quarantined, unusable and withdrawn never do).
EXPORTABLE_STATUSES = (Image.Status.ACTIVE, Image.Status.RETIRED)


class Source:
    CROWD = "crowd"
    CLINICIAN = "clinician"
    GOLD = "gold"


def images_exportable(
    images: QuerySet[Image] | None = None, *, at: datetime | None = None
) -> QuerySet[Image]:
    """Images of `images` (default: all) that a research export may include at time `at`.

    Consent is the consent app's rule (`consent.selectors.image_queryset_exportable`): the
    image still has pixels (in play or retired) and its donor's consent is `active`, inside its
    validity period at `at` and decides `"permit"` for `research_export`. On top of that, an
    image that a withdrawal marked in an earlier export (`exports_mark_withdrawn`) never enters
    a later snapshot, even before the consent record itself changes.
    """
    from consent.selectors import image_queryset_exportable

    allowed = image_queryset_exportable(purpose=Purpose.RESEARCH_EXPORT, at=at)
    images = Image.objects.all() if images is None else images
    return images.filter(pk__in=allowed.values("pk")).exclude(
        export_items__withdrawn_at__isnull=False
    )


@dataclass(frozen=True)
class ExportFilters:
    """What a researcher asked for. `classes` are class codes (empty: all)."""

    classes: tuple[str, ...] = ()
    min_confidence: float = 0.0
    min_labels: int = 0
    gold_only: bool = False

    def as_json(self) -> dict:
        return {
            "classes": list(self.classes),
            "min_confidence": self.min_confidence,
            "min_labels": self.min_labels,
            "gold_only": self.gold_only,
        }

    @classmethod
    def from_json(cls, data: dict) -> ExportFilters:
        return cls(
            classes=tuple(data.get("classes") or ()),
            min_confidence=float(data.get("min_confidence") or 0.0),
            min_labels=int(data.get("min_labels") or 0),
            gold_only=bool(data.get("gold_only")),
        )


@dataclass(frozen=True)
class ExportRow:
    """One image of an export with the label it carries.

    Classification: `label` is a class code and `posterior` maps every class code to its
    probability (one-hot for gold). Segmentation: `label` is empty, the mask comes from the
    clinician's gold mask or the STAPLE consensus, and `confidence` is the contours' mean Dice
    agreement with the consensus (1 for a clinician's mask).
    """

    image: Image
    label: str
    confidence: float
    n_labels: int
    n_players: int
    source: str
    posterior: dict[str, float] = field(default_factory=dict)
    consent_form: tuple[str, int] = ("", 0)


def _clinician_gold(dataset: Dataset) -> set[int]:
    """Images whose gold a clinician decided (as opposed to the source dataset's experts)."""
    return set(
        ReviewItem.objects.filter(
            image__dataset=dataset,
            status=ReviewItem.Status.RESOLVED,
            outcome__action__in=[
                ReviewDecision.Action.CONFIRM,
                ReviewDecision.Action.RELABEL,
                ReviewDecision.Action.CONTOUR,
            ],
        ).values_list("image_id", flat=True)
    )


def export_rows(
    *, dataset: Dataset, filters: ExportFilters, at: datetime | None = None
) -> list[ExportRow]:
    """The rows of a snapshot of `dataset` under `filters`, in image order.

    Gold and clinician labels count as confidence 1 and pass `min_confidence`; `min_labels`
    counts crowd labels for every image, gold included.
    """
    images = images_exportable(
        Image.objects.filter(dataset=dataset, status__in=EXPORTABLE_STATUSES), at=at
    ).select_related(
        "gold_class", "consensus__label_class", "consent__form", "consensus_mask", "gold_mask"
    )
    clinician = _clinician_gold(dataset)
    codes = list(dataset.classes.order_by("order").values_list("code", flat=True))
    rows = []
    for image in images.order_by("id"):
        row = (
            _segmentation_row(image, clinician)
            if dataset.task == Dataset.Task.SEGMENTATION
            else _classification_row(image, clinician, codes)
        )
        if row is None:
            continue
        if filters.gold_only and row.source == Source.CROWD:
            continue
        if (
            filters.classes
            and row.label not in filters.classes
            and dataset.task != Dataset.Task.SEGMENTATION
        ):
            continue
        if row.confidence < filters.min_confidence or row.n_labels < filters.min_labels:
            continue
        rows.append(row)
    return rows


def _related(image: Image, name: str):  # type: ignore[no-untyped-def]
    try:
        return getattr(image, name)
    except Image._meta.get_field(name).related_model.DoesNotExist:
        return None


def _form(image: Image) -> tuple[str, int]:
    return (image.consent.form.slug, image.consent.form.version)


def _classification_row(image: Image, clinician: set[int], codes: list[str]) -> ExportRow | None:
    consensus = _related(image, "consensus")
    n_labels = consensus.n_labels if consensus else 0
    n_players = consensus.n_players if consensus else 0
    if image.gold_class_id is not None:
        code = image.gold_class.code
        return ExportRow(
            image=image,
            label=code,
            confidence=1.0,
            n_labels=n_labels,
            n_players=n_players,
            source=Source.CLINICIAN if image.pk in clinician else Source.GOLD,
            posterior={c: 1.0 if c == code else 0.0 for c in codes},
            consent_form=_form(image),
        )
    if consensus is None:
        return None
    return ExportRow(
        image=image,
        label=consensus.label_class.code,
        confidence=float(consensus.confidence),
        n_labels=n_labels,
        n_players=n_players,
        source=Source.CROWD,
        posterior={c: float(consensus.posterior.get(c, 0.0)) for c in codes},
        consent_form=_form(image),
    )


def _segmentation_row(image: Image, clinician: set[int]) -> ExportRow | None:
    mask = _related(image, "consensus_mask")
    gold = _related(image, "gold_mask")
    n_labels = mask.n_contours if mask else 0
    n_players = mask.n_players if mask else 0
    if gold is not None:
        source = Source.CLINICIAN if gold.source == GoldMask.Source.CLINICIAN else Source.GOLD
        return ExportRow(image, "", 1.0, n_labels, n_players, source, consent_form=_form(image))
    if mask is None:
        return None
    return ExportRow(
        image,
        "",
        float(mask.mean_agreement),
        n_labels,
        n_players,
        Source.CROWD,
        consent_form=_form(image),
    )
