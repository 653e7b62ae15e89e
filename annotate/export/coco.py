"""COCO run-length encoding and documents, pure numpy (no Django, no pycocotools needed).

The encoding is the one of pycocotools' `maskApi.c`: the mask is read in column-major (Fortran)
order, `counts` alternate runs of 0s and 1s starting with 0s, and the compressed string form
stores each count (minus the count two places earlier, from the third on) in 5-bit groups
offset by 48, with bit 0x20 meaning "more groups follow".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def rle_counts(mask: npt.ArrayLike) -> list[int]:
    """Run lengths of a mask in column-major order, starting with a run of 0s.

    Parameters
    ----------
    mask : (H, W) bool

    Returns
    -------
    list of int
        Sums to H * W; the first entry is 0 when the first pixel is set.
    """
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def rle_string(counts: list[int]) -> str:
    """The compressed COCO string of run lengths (LEB128-like, as `rleToString` in maskApi.c)."""
    out = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_encode(mask: npt.ArrayLike) -> dict:
    """Compressed COCO RLE `{"size": [H, W], "counts": str}` of a (H, W) bool mask."""
    array = np.asarray(mask, dtype=bool)
    return {
        "size": [int(array.shape[0]), int(array.shape[1])],
        "counts": rle_string(rle_counts(array)),
    }


def mask_bbox(mask: npt.ArrayLike) -> list[float]:
    """COCO `[x, y, width, height]` of the set pixels of a (H, W) mask (zeros when empty)."""
    array = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(array.any(axis=1)), np.flatnonzero(array.any(axis=0))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [
        float(cols[0]),
        float(rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    ]


def flat_polygons(rings: list[npt.NDArray[np.float64]]) -> list[list[float]]:
    """COCO polygon lists `[x1, y1, x2, y2, ...]` from (N, 2) rings."""
    return [np.asarray(r, dtype=np.float64).ravel().round(3).tolist() for r in rings]
