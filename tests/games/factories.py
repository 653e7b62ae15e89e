"""Helpers that build playable datasets quickly (rows in bulk; files only where pixels matter)."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from annotate.models import Dataset, Image, LabelClass
from annotate.services import CLASS_STYLES
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


def real_image_files(folder: str, n: int, size: int = 256) -> list[bytes]:
    """``n`` real public images from the shared data, as small PNGs (fails loudly if missing)."""
    root = Path(settings.DATA_DIR) / "images" / folder / "images"
    files = sorted(root.iterdir())[:n]
    assert len(files) == n, f"need {n} images under {root}"
    out = []
    for path in files:
        with PILImage.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            out.append(buf.getvalue())
    return out


def playable_dataset(
    *,
    classes: tuple[str, ...] = ("a", "b"),
    plain: int = 120,
    refs_per_class: int = 1,
    gold_per_class: int = 0,
    with_files: bool = False,
    real_images: str = "",
    **dataset_kwargs,
) -> Dataset:
    """A dataset with reference gold images per class, extra gold, and ``plain`` non-gold images."""
    dataset = DatasetFactory(classes=list(classes), **dataset_kwargs)
    for cls in dataset.classes.all():
        cls.colour, cls.shape = CLASS_STYLES[cls.order]
        cls.save(update_fields=["colour", "shape"])
    consent = ConsentFactory()
    for cls in dataset.classes.all():
        for _ in range(refs_per_class + gold_per_class):
            if with_files:
                ImageFactory(dataset=dataset, consent=consent, gold_class=cls)
            else:
                images_bulk(dataset=dataset, consent=consent, n=1, gold=cls)
    if real_images:
        for content in real_image_files(real_images, plain):
            ImageFactory(
                dataset=dataset,
                consent=consent,
                file=ContentFile(content, "image.png"),
                thumbnail=ContentFile(content, "thumb.png"),
            )
    elif with_files:
        for _ in range(plain):
            ImageFactory(dataset=dataset, consent=consent)
    else:
        images_bulk(dataset=dataset, consent=consent, n=plain)
    return dataset
