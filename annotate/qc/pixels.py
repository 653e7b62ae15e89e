"""Read stored images as arrays and rewrite them with a fix (numpy + Pillow, no Django models)."""

from __future__ import annotations

import io
from typing import IO

import numpy as np
from PIL import Image as PILImage

from ml.qc.transforms import apply_transform

_GREY_MODES = ("L", "I;16", "I", "1", "LA")
# Transforms that turn the picture by 90° (width and height swap).
SWAPS_AXES = frozenset({"rotate_cw_90", "rotate_ccw_90", "transpose", "antitranspose"})


def read_for_qc(handle: IO[bytes]) -> np.ndarray:
    """A stored image as the QC detectors take it: (H, W) or (H, W, 3) uint8, first frame."""
    with PILImage.open(handle) as pil:
        return np.asarray(pil.convert("L" if pil.mode in _GREY_MODES else "RGB"))


def _invert(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return apply_transform(arr, "invert")
    top = np.iinfo(arr.dtype).max if np.issubdtype(arr.dtype, np.integer) else 1.0
    return (top - arr).astype(arr.dtype)


def transform_array(arr: np.ndarray, transforms: list[str]) -> np.ndarray:
    """Apply `transforms` (``ml.qc`` orientation names or ``"invert"``) in order."""
    for name in transforms:
        arr = _invert(arr) if name == "invert" else apply_transform(arr, name)
    return arr


def rewrite_file(data: bytes, transforms: list[str]) -> tuple[bytes, str]:
    """The image in `data` with `transforms` applied, in its own format.

    PNG and WebP stay lossless; JPEG is re-encoded at quality 95. Palette and bilevel images are
    expanded first (a palette index cannot be inverted). Returns (bytes, extension).
    """
    with PILImage.open(io.BytesIO(data)) as pil:
        fmt = (pil.format or "PNG").upper()
        if pil.mode in ("P", "PA"):
            pil = pil.convert("RGBA" if "transparency" in pil.info or pil.mode == "PA" else "RGB")
        elif pil.mode == "1":
            pil = pil.convert("L")
        elif pil.mode == "CMYK":
            pil = pil.convert("RGB")
        arr = np.asarray(pil)
    # fromarray infers the mode back from the dtype and channels (L, LA, RGB, RGBA, I;16).
    image = PILImage.fromarray(np.ascontiguousarray(transform_array(arr, transforms)))
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(
            out, format="JPEG", quality=95
        )
        return out.getvalue(), "jpg"
    if fmt == "WEBP":
        image.save(out, format="WEBP", lossless=True)
        return out.getvalue(), "webp"
    image.save(out, format="PNG")
    return out.getvalue(), "png"
