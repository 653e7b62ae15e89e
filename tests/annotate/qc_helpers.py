"""Shared pieces of the intake-QC platform tests: images with known pixels, a stub detector."""

from __future__ import annotations

import io

import numpy as np
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PILImage

from annotate.models import QcModelVersion
from ml.qc.scores import DetectorConfig, build_scores
from ml.qc.transforms import ORIENTATIONS
from tests.factories import ImageFactory

ALL_ON = {"rotation": True, "flip": True, "inversion": True, "ood": True}
CONFIG = DetectorConfig(
    enabled=ALL_ON, thresholds={"rotation": 0.0, "flip": 0.0, "inversion": 0.0, "ood": 10.0}
)


def pixels(seed: int = 0, shape: tuple[int, int] = (8, 12)) -> np.ndarray:
    """An asymmetric grey image: no rotation or mirror of it equals it."""
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def png(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(arr).save(out, format="PNG")
    return out.getvalue()


def stored(field) -> np.ndarray:  # type: ignore[no-untyped-def]
    with field.open("rb") as handle, PILImage.open(handle) as pil:
        return np.asarray(pil.convert("L"))


def image_with_pixels(dataset, arr: np.ndarray, **kwargs):  # type: ignore[no-untyped-def]
    data = png(arr)
    return ImageFactory(
        dataset=dataset,
        width=arr.shape[1],
        height=arr.shape[0],
        file=ContentFile(data, name="image.png"),
        thumbnail=ContentFile(data, name="thumb.png"),
        **kwargs,
    )


def fake_scores(orientation: str = "identity", inverted: bool = False, ood: float = 1.0):  # type: ignore[no-untyped-def]
    """Real `ml.qc` scores (build_scores) from detector outputs that say exactly this."""
    logits = np.full((1, 8), -10.0)
    logits[0, ORIENTATIONS.index(orientation)] = 10.0
    inversion = np.array([10.0 if inverted else -10.0])
    return build_scores(logits, inversion, np.array([ood]), CONFIG)[0]


class StubModel:
    """Stands in for a trained `ml.qc.QcModel`: answers by the image's top-left pixel value."""

    def __init__(self, verdicts: dict[int, dict]) -> None:
        self.verdicts = verdicts
        self.calls = 0

    def score(self, arrays):  # type: ignore[no-untyped-def]
        self.calls += 1
        return [fake_scores(**self.verdicts.get(int(np.asarray(a).flat[0]), {})) for a in arrays]


def ready_version(dataset) -> QcModelVersion:  # type: ignore[no-untyped-def]
    return QcModelVersion.objects.create(
        dataset=dataset,
        version=1,
        status=QcModelVersion.Status.READY,
        file=ContentFile(b"stub", name="qc.pt"),
        enabled=ALL_ON,
        thresholds=dict(CONFIG.thresholds),
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
