"""Image corruptions, their fixes and the preprocessing the QC detectors see (numpy + Pillow only).

The eight orientations form the dihedral group D4: four proper rotations and four reflections. Any
combination of 90° rotations and flips is exactly one of them, so an image is either rotated *or*
mirrored across one axis, never both. The same functions corrupt training images and apply the fix a
reviewer accepts: the fix of an orientation is the transform named by :data:`INVERSE`.

Conventions (array axes 0 = rows/top→bottom, 1 = columns/left→right):

- ``rotate_cw_90``: the picture turned 90° clockwise (``np.rot90(x, -1)``);
- ``flip_horizontal``: mirrored left↔right (an editor's "Flip Horizontal"), ``x[:, ::-1]``;
- ``flip_vertical``: mirrored top↔bottom, ``x[::-1]``;
- ``transpose``: mirrored across the main diagonal, ``x.swapaxes(0, 1)``;
- ``antitranspose``: mirrored across the anti-diagonal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from PIL import Image

#: Orientation class order used by the network's 8-way head (index = class id).
ORIENTATIONS: Final[tuple[str, ...]] = (
    "identity",
    "rotate_cw_90",
    "rotate_180",
    "rotate_ccw_90",
    "flip_horizontal",
    "flip_vertical",
    "transpose",
    "antitranspose",
)
ROTATIONS: Final[tuple[str, ...]] = ORIENTATIONS[1:4]
REFLECTIONS: Final[tuple[str, ...]] = ORIENTATIONS[4:]

#: The transform that undoes each orientation.
INVERSE: Final[dict[str, str]] = {
    "identity": "identity",
    "rotate_cw_90": "rotate_ccw_90",
    "rotate_180": "rotate_180",
    "rotate_ccw_90": "rotate_cw_90",
    "flip_horizontal": "flip_horizontal",
    "flip_vertical": "flip_vertical",
    "transpose": "transpose",
    "antitranspose": "antitranspose",
}

#: ``MIRROR_PARTNER[g]`` is ``g`` applied after a left↔right mirror: ``g(flip_horizontal(x))``.
#: Where the anatomy has no handedness the two look alike, so the rotation detector merges them.
MIRROR_PARTNER: Final[dict[str, str]] = {
    "identity": "flip_horizontal",
    "rotate_cw_90": "antitranspose",
    "rotate_180": "flip_vertical",
    "rotate_ccw_90": "transpose",
    "flip_horizontal": "identity",
    "flip_vertical": "rotate_180",
    "transpose": "rotate_ccw_90",
    "antitranspose": "rotate_cw_90",
}

#: Clockwise angle of each proper rotation, in degrees.
ROTATION_DEG_CW: Final[dict[str, int]] = {
    "identity": 0,
    "rotate_cw_90": 90,
    "rotate_180": 180,
    "rotate_ccw_90": 270,
}

#: Human wording of each reflection's axis (``QcScores.flip_axis``).
FLIP_AXIS: Final[dict[str, str]] = {
    "flip_horizontal": "horizontal",
    "flip_vertical": "vertical",
    "transpose": "diagonal",
    "antitranspose": "antidiagonal",
}

#: What a reviewer reads for each fix.
FIX_TEXT: Final[dict[str, str]] = {
    "rotate_cw_90": "rotate 90° clockwise back",
    "rotate_180": "rotate 180° back",
    "rotate_ccw_90": "rotate 90° counterclockwise back",
    "flip_horizontal": "flip horizontally (left-right) back",
    "flip_vertical": "flip vertically (top-bottom) back",
    "transpose": "mirror across the main diagonal back",
    "antitranspose": "mirror across the anti-diagonal back",
    "invert": "invert intensities back",
}

_ORIENT: Final[dict[str, Callable[[np.ndarray], np.ndarray]]] = {
    "identity": lambda x: x,
    "rotate_cw_90": lambda x: np.rot90(x, -1),
    "rotate_180": lambda x: np.rot90(x, 2),
    "rotate_ccw_90": lambda x: np.rot90(x, 1),
    "flip_horizontal": lambda x: x[:, ::-1],
    "flip_vertical": lambda x: x[::-1],
    "transpose": lambda x: x.swapaxes(0, 1),
    "antitranspose": lambda x: x[::-1, ::-1].swapaxes(0, 1),
}


def invert(image: np.ndarray) -> np.ndarray:
    """Invert the intensities of a uint8 image (negative film look).

    Parameters
    ----------
    image : np.ndarray, shape (H, W) or (H, W, C), dtype uint8

    Returns
    -------
    np.ndarray, same shape, dtype uint8
        ``255 - image``; an alpha channel (C == 4) is kept as it is.
    """
    _check_uint8(image)
    out = 255 - image
    if image.ndim == 3 and image.shape[2] == 4:
        out[..., 3] = image[..., 3]
    return out


def apply_transform(image: np.ndarray, name: str) -> np.ndarray:
    """Apply one orientation (see :data:`ORIENTATIONS`) or ``"invert"`` to an image.

    Used both to make synthetic corruptions and to apply the fix a reviewer accepts.

    Parameters
    ----------
    image : np.ndarray, shape (H, W) or (H, W, C)
    name : str
        One of :data:`ORIENTATIONS` or ``"invert"`` (uint8 only).

    Returns
    -------
    np.ndarray
        A new contiguous array; rotations by 90° and diagonal mirrors swap H and W.
    """
    if name == "invert":
        return invert(image)
    try:
        fn = _ORIENT[name]
    except KeyError:
        raise ValueError(f"unknown transform {name!r}") from None
    if image.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D or H×W×C image, got shape {image.shape}")
    return np.ascontiguousarray(fn(image))


def to_gray(image: np.ndarray) -> np.ndarray:
    """Convert a uint8 image to float32 grey levels in [0, 255].

    Parameters
    ----------
    image : np.ndarray, shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), dtype uint8
        Colour is converted with the ITU-R BT.601 luma weights; alpha is ignored.

    Returns
    -------
    np.ndarray, shape (H, W), dtype float32
    """
    _check_uint8(image)
    if image.ndim == 2:
        return image.astype(np.float32)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0].astype(np.float32)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    raise ValueError(f"expected a 2-D or H×W×{{1,3,4}} image, got shape {image.shape}")


def preprocess(image: np.ndarray, size: int) -> np.ndarray:
    """Grey, squash to ``size × size`` (antialiased bilinear) and scale to [0, 1].

    The aspect ratio is not kept: a square target makes the resize commute with the eight
    orientations, so corrupting before or after preprocessing gives the same network input.

    Parameters
    ----------
    image : np.ndarray, shape (H, W) or (H, W, C), dtype uint8
    size : int
        Side of the output.

    Returns
    -------
    np.ndarray, shape (size, size), dtype float32, values in [0, 1]
    """
    gray = to_gray(image)
    if gray.shape[0] < 1 or gray.shape[1] < 1:
        raise ValueError("empty image")
    resized = Image.fromarray(gray).resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32) / 255.0, 0.0, 1.0)


def preprocess_batch(images: list[np.ndarray], size: int) -> np.ndarray:
    """:func:`preprocess` each image.

    Returns
    -------
    np.ndarray, shape (N, size, size), dtype float32
    """
    out = np.empty((len(images), size, size), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = preprocess(image, size)
    return out


def _check_uint8(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected a uint8 numpy array, got {dtype}")
