"""Writes for datasets and images."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.db import transaction

from annotate.models import Dataset, Image, LabelClass
from consent.models import Consent
from consent.services import audit_event_record

logger = logging.getLogger(__name__)

# Colour-blind-safe palette (Okabe–Ito) paired with distinct shapes, in class order.
CLASS_STYLES = [
    ("#0072B2", LabelClass.Shape.CIRCLE),
    ("#E69F00", LabelClass.Shape.SQUARE),
    ("#009E73", LabelClass.Shape.TRIANGLE),
    ("#CC79A7", LabelClass.Shape.DIAMOND),
    ("#56B4E9", LabelClass.Shape.STAR),
    ("#D55E00", LabelClass.Shape.HEXAGON),
    ("#F0E442", LabelClass.Shape.CROSS),
    ("#999999", LabelClass.Shape.HEART),
]


@dataclass(frozen=True)
class CleanImage:
    """An image that has passed intake: de-identified bytes plus what the platform derives."""

    content: bytes
    extension: str
    thumbnail: bytes
    width: int
    height: int
    sha256: str
    phash: str
    frames: int = 1
    modality: str = ""


@transaction.atomic
def dataset_ensure(
    *,
    slug: str,
    name: str,
    classes: list[tuple[str, str]],
    task: str = Dataset.Task.CLASSIFICATION,
    description: str = "",
    attribution: str = "",
    licence: str = "",
    modality: str = "",
    target_structure: str = "",
) -> Dataset:
    """Create the dataset and its classes if missing (idempotent on `slug` and class codes)."""
    dataset, created = Dataset.objects.get_or_create(
        slug=slug,
        defaults={
            "name": name,
            "task": task,
            "description": description,
            "attribution": attribution,
            "licence": licence,
            "modality": modality,
            "target_structure": target_structure,
        },
    )
    existing = set(dataset.classes.values_list("code", flat=True))
    for order, (code, label) in enumerate(classes):
        if code in existing:
            continue
        colour, shape = CLASS_STYLES[order % len(CLASS_STYLES)]
        LabelClass.objects.create(
            dataset=dataset, code=code, name=label, order=order, colour=colour, shape=shape
        )
    if created:
        audit_event_record(actor_id=None, action="dataset.created", target=dataset)
    return dataset


def image_create(
    *,
    dataset: Dataset,
    consent: Consent,
    clean: CleanImage,
    source_ref: str = "",
    gold_class: LabelClass | None = None,
    status: str = Image.Status.ACTIVE,
    actor_id: int | None = None,
) -> Image:
    """Store a de-identified image under a consent. Files are written before the row commits;
    a failed transaction leaves orphan files for the media sweeper, never a row without pixels."""
    image = Image(
        dataset=dataset,
        donor_id=consent.donor_id,
        consent=consent,
        status=status,
        width=clean.width,
        height=clean.height,
        frames=clean.frames,
        modality=clean.modality,
        sha256=clean.sha256,
        phash=clean.phash,
        source_ref=source_ref,
        gold_class=gold_class,
    )
    image.file.save(f"image.{clean.extension}", ContentFile(clean.content), save=False)
    image.thumbnail.save("thumb.jpg", ContentFile(clean.thumbnail), save=False)
    image.save()
    audit_event_record(
        actor_id=actor_id,
        action="image.stored",
        target=image,
        details={"dataset": dataset.slug, "status": status, "sha256": clean.sha256},
    )
    return image
