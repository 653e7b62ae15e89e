"""Segmentation datasets for the contour race: image rows with sizes, square gold masks."""

from __future__ import annotations

import hashlib
import io
import uuid

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from annotate.models import Dataset, GoldMask, Image
from tests.factories import ConsentFactory, DatasetFactory

W, H = 64, 48
# Gold: the square [16, 48] x [12, 36] (pixel corners).
GOLD = [[16.0, 12.0], [48.0, 12.0], [48.0, 36.0], [16.0, 36.0]]
NEAR = [[18.0, 13.0], [47.0, 13.0], [47.0, 35.0], [18.0, 35.0]]
FAR = [[2.0, 2.0], [14.0, 2.0], [14.0, 10.0], [2.0, 10.0]]


def square_mask_png() -> bytes:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[12:36, 16:48] = 255
    out = io.BytesIO()
    PILImage.fromarray(mask, mode="L").save(out, format="PNG")
    return out.getvalue()


def race_dataset(*, plain: int = 4, gold: int = 2, references: int = 1, consent=None) -> Dataset:
    """A segmentation dataset: ``references`` + ``gold`` images with a gold square, ``plain``
    without. The lowest-id gold images are the reference examples (never raced)."""
    dataset = DatasetFactory(
        task=Dataset.Task.SEGMENTATION, target_structure="Skin lesion", retire_min_labels=3
    )
    consent = consent or ConsentFactory()

    def image() -> Image:
        return Image.objects.create(
            dataset=dataset,
            donor_id=consent.donor_id,
            consent=consent,
            width=W,
            height=H,
            sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
            file=ContentFile(square_mask_png(), "image.png"),
        )

    for _ in range(references + gold):
        GoldMask.objects.create(
            image=image(),
            mask=ContentFile(square_mask_png(), "gold.png"),
            polygons=[GOLD],
            source=GoldMask.Source.DATASET,
        )
    for _ in range(plain):
        image()
    return dataset
