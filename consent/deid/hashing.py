"""Exact and perceptual hashes for duplicate detection.

dHash and pHash are a few lines of numpy/scipy; the ``imagehash`` package would add itself and
PyWavelets for the same two functions, so they are implemented here following the usual
definitions (dHash: horizontal gradient signs of a 9x8 grey thumbnail; pHash: the 8x8
low-frequency block of the orthonormal 2-D DCT of a 32x32 grey thumbnail against its median).
Values are not bit-identical to imagehash's (it uses an unnormalised DCT).
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
from PIL import Image
from scipy.fft import dctn

HASH_BITS: Final = 64
#: Hamming distance (of 64 bits) at or below which two images count as near duplicates.
NEAR_DUPLICATE_BITS: Final = 6


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _grey(display: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(display)
    if image.mode != "L":
        image = image.convert("L")
    # BOX averaging has no ringing, so flat regions stay exactly flat and their dHash bits stable.
    return np.asarray(image.resize(size, Image.Resampling.BOX), dtype=np.float64)


def _to_hex(bits: np.ndarray) -> str:
    value = 0
    for bit in bits.ravel():
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def dhash(display: np.ndarray) -> str:
    """Difference hash, 16 hex digits. ``display``: ``uint8``, ``(H, W)`` or ``(H, W, 3)``."""
    grey = _grey(display, (9, 8))
    return _to_hex(grey[:, 1:] > grey[:, :-1])


def phash(display: np.ndarray) -> str:
    """DCT perceptual hash, 16 hex digits. ``display``: ``uint8``, ``(H, W)`` or ``(H, W, 3)``."""
    grey = _grey(display, (32, 32))
    low = dctn(grey, type=2, norm="ortho")[:8, :8]
    return _to_hex(low > np.median(low))


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of equal length."""
    if len(a) != len(b):
        raise ValueError("hashes must have the same length")
    return (int(a, 16) ^ int(b, 16)).bit_count()


def is_near_duplicate(a: str, b: str, *, max_bits: int = NEAR_DUPLICATE_BITS) -> bool:
    """True when two perceptual hashes differ in at most ``max_bits`` bits."""
    return hamming(a, b) <= max_bits
