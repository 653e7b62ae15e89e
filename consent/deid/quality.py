"""Basic quality checks on the 8-bit display image, returned as flags (never rejections)."""

from __future__ import annotations

from typing import Final

import numpy as np

#: Standard deviation (of 0..255 values) below which an image counts as blank.
BLANK_STD: Final = 2.0
#: An image is too dark when even its brightest 1 % stays below DARK_P99, too bright when even
#: its darkest 1 % stays above BRIGHT_P1 (percentiles, unlike a mean, ignore a black background).
DARK_P99: Final = 40.0
BRIGHT_P1: Final = 215.0


def quality_flags(display: np.ndarray, *, min_side: int) -> tuple[str, ...]:
    """Flags among ``blank``, ``too_small``, ``too_dark``, ``too_bright``.

    Parameters
    ----------
    display
        ``uint8`` image, shape ``(H, W)`` or ``(H, W, 3)``.
    min_side
        Smallest acceptable side in pixels.
    """
    flags: list[str] = []
    height, width = display.shape[:2]
    if min(height, width) < min_side:
        flags.append("too_small")
    values = display.astype(np.float64)
    if float(values.std()) < BLANK_STD:
        flags.append("blank")
        return tuple(flags)
    low, high = np.percentile(values, (1.0, 99.0))
    if high < DARK_P99:
        flags.append("too_dark")
    elif low > BRIGHT_P1:
        flags.append("too_bright")
    return tuple(flags)
