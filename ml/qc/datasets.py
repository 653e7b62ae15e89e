"""Readers for the shared public image sets used by the QC benchmark and tests.

The data lives outside the repository: ``$TESSERA_DATA_DIR`` or ``<repo>/../shared/data``. A missing
folder raises ``FileNotFoundError`` (tests must fail, not skip, without the data).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ImageSet:
    """Images of one dataset with the group (patient or lesion) each belongs to.

    Attributes
    ----------
    images : list of np.ndarray, each (H, W) or (H, W, 3) uint8
    groups : list of str
        Split by these so that no patient/lesion is on both sides.
    """

    name: str
    images: list[np.ndarray]
    groups: list[str]


def data_dir() -> Path:
    """The shared data folder (``$TESSERA_DATA_DIR`` or ``<repo>/../shared/data``)."""
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    root = Path(os.environ.get("TESSERA_DATA_DIR", default))
    if not (root / "images").is_dir():
        raise FileNotFoundError(
            f"shared image data not found at {root}/images; set TESSERA_DATA_DIR to the data folder"
        )
    return root


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        mode = "L" if im.mode in ("L", "I;16", "I", "1", "LA") else "RGB"
        return np.asarray(im.convert(mode), dtype=np.uint8).copy()


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_chest_xrays(limit: int | None = None) -> ImageSet:
    """Paediatric chest X-rays (Kermany et al. 2018, CC BY 4.0), grouped by patient, file order."""
    root = data_dir() / "images" / "chest_xray_kermany_subset"
    rows = _csv_rows(root / "labels.csv")[:limit]
    return ImageSet(
        "chest_xray_kermany_subset",
        [_read(root / "images" / r["file"]) for r in rows],
        [r["patient_id"] for r in rows],
    )


def load_ham10000(limit: int | None = None) -> ImageSet:
    """HAM10000 dermoscopy (Tschandl et al. 2018, CC BY-NC 4.0), grouped by lesion."""
    root = data_dir() / "images" / "ham10000_subset"
    rows = _csv_rows(root / "labels.csv")[:limit]
    return ImageSet(
        "ham10000_subset",
        [_read(root / "images" / f"{r['image_id']}.jpg") for r in rows],
        [r["lesion_id"] for r in rows],
    )


def load_isic(limit: int | None = None) -> ImageSet:
    """ISIC segmentation subset dermoscopy (CC BY-NC 4.0), grouped by lesion."""
    root = data_dir() / "images" / "isic_seg_subset"
    rows = _csv_rows(root / "labels.csv")[:limit]
    images = []
    for r in rows:
        matches = sorted((root / "images").glob(f"{r['image_id']}.*"))
        if not matches:
            raise FileNotFoundError(f"no image file for {r['image_id']} in {root / 'images'}")
        images.append(_read(matches[0]))
    return ImageSet("isic_seg_subset", images, [r["lesion_id"] for r in rows])


def load_pneumoniamnist(split: str) -> ImageSet:
    """PneumoniaMNIST 28×28 chest X-rays (MedMNIST v2, CC BY 4.0); ``split`` is train/val/test."""
    path = data_dir() / "images" / "pneumoniamnist" / "pneumoniamnist.npz"
    with np.load(path) as npz:
        arr = npz[f"{split}_images"]
    return ImageSet(
        f"pneumoniamnist_{split}", [a.copy() for a in arr], [f"{split}{i}" for i in range(len(arr))]
    )


def load_mr_slices() -> ImageSet:
    """Axial brain MR DICOM slices (dcm_qa_toshiba, BSD-2), min–max windowed to uint8."""
    import pydicom  # only the benchmark reads DICOM here

    root = data_dir() / "images" / "dicom_mr_brain_toshiba"
    images = []
    paths = sorted(root.rglob("*.dcm"))
    for path in paths:
        pixels = pydicom.dcmread(path).pixel_array.astype(np.float64)
        lo, hi = float(pixels.min()), float(pixels.max())
        scaled = (pixels - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(pixels)
        images.append(np.round(scaled).astype(np.uint8))
    return ImageSet("dicom_mr_brain_toshiba", images, [p.name for p in paths])
