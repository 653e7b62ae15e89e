"""Helpers that build playable datasets quickly (rows in bulk; files only where pixels matter)."""

from __future__ import annotations

import hashlib
import uuid

from annotate.models import Dataset, Image, LabelClass
from consent.models import Consent
from tests.factories import ConsentFactory, DatasetFactory, ImageFactory


def images_bulk(
    *,
    dataset: Dataset,
    consent: Consent,
    n: int,
    gold: LabelClass | None = None,
    status: str = Image.Status.ACTIVE,
) -> list[Image]:
    """``n`` image rows without files (the selector and the services never open them)."""
    rows = [
        Image(
            dataset=dataset,
            donor_id=consent.donor_id,
            consent=consent,
            status=status,
            sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
            gold_class=gold,
        )
        for _ in range(n)
    ]
    return Image.objects.bulk_create(rows)


def playable_dataset(
    *,
    classes: tuple[str, ...] = ("a", "b"),
    plain: int = 120,
    refs_per_class: int = 1,
    gold_per_class: int = 0,
    with_files: bool = False,
    **dataset_kwargs,
) -> Dataset:
    """A dataset with reference gold images per class, extra gold, and ``plain`` non-gold images."""
    dataset = DatasetFactory(classes=list(classes), **dataset_kwargs)
    consent = ConsentFactory()
    for cls in dataset.classes.all():
        for _ in range(refs_per_class + gold_per_class):
            if with_files:
                ImageFactory(dataset=dataset, consent=consent, gold_class=cls)
            else:
                images_bulk(dataset=dataset, consent=consent, n=1, gold=cls)
    if with_files:
        for _ in range(plain):
            ImageFactory(dataset=dataset, consent=consent)
    else:
        images_bulk(dataset=dataset, consent=consent, n=plain)
    return dataset
