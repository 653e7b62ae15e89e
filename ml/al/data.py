"""Loading the labelled image datasets of ``shared/data/images`` as numpy arrays (no torch)."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

DATASETS = ("pneumoniamnist", "chest_xray_kermany_subset", "ham10000_subset")


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image set.

    Attributes
    ----------
    name : folder name under ``data/images``.
    images : (n, C, H, W) float32 array in [0, 1].
    labels : (n,) int64 array of class codes (indices into ``classes``).
    classes : class names.
    groups : (n,) str array; images of one patient / lesion share a group (split by it).
    splits : (n,) str array; the source's own split ("train", "val", "test") or "" when none.
    """

    name: str
    images: NDArray[np.float32]
    labels: NDArray[np.int64]
    classes: tuple[str, ...]
    groups: NDArray[np.str_]
    splits: NDArray[np.str_]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def default_data_dir() -> Path:
    """``$TESSERA_DATA_DIR`` or ``<repo>/../shared/data``."""
    env = os.environ.get("TESSERA_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _load_pneumoniamnist(folder: Path) -> ImageDataset:
    data = np.load(folder / "pneumoniamnist.npz")
    parts = ("train", "val", "test")
    images = np.concatenate([data[f"{p}_images"] for p in parts])
    labels = np.concatenate([data[f"{p}_labels"].ravel() for p in parts]).astype(np.int64)
    splits = np.concatenate([np.full(len(data[f"{p}_labels"]), p) for p in parts])
    return ImageDataset(
        name="pneumoniamnist",
        images=(images[:, None, :, :].astype(np.float32) / 255.0),
        labels=labels,
        classes=("normal", "pneumonia"),
        groups=np.array([str(i) for i in range(len(labels))]),
        splits=splits,
    )


def _load_images(paths: list[Path], size: int, mode: str) -> NDArray[np.float32]:
    from PIL import Image  # Pillow is only needed for the JPEG folders

    out = np.zeros((len(paths), 1 if mode == "L" else 3, size, size), dtype=np.float32)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            arr = np.asarray(im.convert(mode).resize((size, size), Image.Resampling.BILINEAR))
        out[i] = (arr[None] if mode == "L" else arr.transpose(2, 0, 1)) / 255.0
    return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _load_folder(folder: Path, name: str, size: int) -> ImageDataset:
    if name == "chest_xray_kermany_subset":
        rows = _read_csv(folder / "labels.csv")
        files = [folder / "images" / r["file"] for r in rows]
        names, groups, mode = [r["label"] for r in rows], [r["patient_id"] for r in rows], "L"
    elif name == "ham10000_subset":
        rows = _read_csv(folder / "labels.csv")
        files = [folder / "images" / f"{r['image_id']}.jpg" for r in rows]
        names, groups, mode = [r["dx"] for r in rows], [r["lesion_id"] for r in rows], "RGB"
    else:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    classes = tuple(sorted(set(names)))
    return ImageDataset(
        name=name,
        images=_load_images(files, size, mode),
        labels=np.array([classes.index(n) for n in names], dtype=np.int64),
        classes=classes,
        groups=np.array(groups),
        splits=np.full(len(names), ""),
    )


def load_image_dataset(
    name: str, *, data_dir: str | Path | None = None, size: int = 64
) -> ImageDataset:
    """Load one dataset of ``<data_dir>/images``.

    Parameters
    ----------
    name : one of :data:`DATASETS`.
    data_dir : defaults to :func:`default_data_dir`.
    size : JPEG folders are resized to ``size x size`` (PneumoniaMNIST stays 28 x 28).

    Raises
    ------
    FileNotFoundError
        When the dataset is missing (tests and benchmarks must fail loudly, not skip).
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = root / "images" / name
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} not found (set TESSERA_DATA_DIR)")
    if name == "pneumoniamnist":
        dataset = _load_pneumoniamnist(folder)
    else:
        dataset = _load_folder(folder, name, size)
    logger.info("loaded %s: %s images, classes %s", name, len(dataset.labels), dataset.classes)
    return dataset


def group_split(
    groups: NDArray[np.str_], shares: tuple[float, ...], rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    """Split indices into parts of roughly the given shares, never splitting a group.

    Parameters
    ----------
    groups : (n,) array of group ids.
    shares : shares of each part (summing to at most one; the remainder goes to the last part).
    rng : numpy Generator (shuffles the groups).

    Returns
    -------
    one sorted (m_j,) int array per share.
    """
    unique = np.unique(groups)
    order = unique[rng.permutation(len(unique))]
    bounds = np.round(np.cumsum(shares) * len(order)).astype(int)
    bounds[-1] = len(order)
    parts, start = [], 0
    for end in bounds:
        chosen = set(order[start:end].tolist())
        parts.append(np.flatnonzero([g in chosen for g in groups]).astype(np.int64))
        start = end
    return parts
