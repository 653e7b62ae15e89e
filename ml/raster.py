"""Polygon ⇄ mask conversion at image resolution, exact under the pixel-centre rule.

Coordinates are ``(x, y)`` in pixels with the origin at the top-left *corner* of the image: pixel
``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)`` and its centre is ``(j + 0.5, i + 0.5)``
(the convention of a browser canvas drawn at image resolution).

A pixel belongs to a polygon when its centre lies inside it, with the even-odd rule for
self-intersecting outlines and several rings (holes). A centre exactly on an edge is inside for a left
or top edge and outside for a right or bottom edge (the "top-left" rule of rasterisers), so polygons
that share an edge split the pixels between them without overlap or gap.

Pillow's ``ImageDraw.polygon`` is not used: it puts pixel centres at integer coordinates and fills
its outline inclusively, which differs from this rule on every boundary pixel.

``mask_to_polygons`` traces the pixel-edge outlines of a mask (outer boundaries and holes); filling
them with :func:`polygons_to_mask` gives the mask back exactly. Smooth (marching-squares) contours
would need scikit-image, which is not a dependency.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ml._crowd import FloatArray

__all__ = ["mask_to_polygons", "polygon_to_mask", "polygons_to_mask"]

BoolImage = npt.NDArray[np.bool_]


def polygon_to_mask(vertices: npt.ArrayLike, height: int, width: int) -> BoolImage:
    """Rasterise one polygon.

    Parameters
    ----------
    vertices : (N, 2) float
        ``(x, y)`` pixel coordinates of the outline, in order; the closing edge is implied.
    height, width : int
        Image size.

    Returns
    -------
    (height, width) bool
        Pixels whose centre is inside (even-odd rule, top-left edge rule).
    """
    return polygons_to_mask([vertices], height, width)


def polygons_to_mask(rings: Sequence[npt.ArrayLike], height: int, width: int) -> BoolImage:
    """Rasterise several rings together with the even-odd rule (a ring inside another is a hole).

    Parameters
    ----------
    rings : sequence of (N_k, 2) float arrays
        ``(x, y)`` outlines; rings with fewer than 3 vertices are ignored.
    height, width : int

    Returns
    -------
    (height, width) bool
    """
    if height < 0 or width < 0:
        raise ValueError("height and width must be non-negative")
    starts, ends = [], []
    for ring in rings:
        points = np.asarray(ring, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"vertices must have shape (N, 2), got {points.shape}")
        if not np.isfinite(points).all():
            raise ValueError("vertices must be finite")
        if points.shape[0] >= 3:
            starts.append(points)
            ends.append(np.roll(points, -1, axis=0))
    if not starts or height == 0 or width == 0:
        return np.zeros((height, width), dtype=bool)
    p0, p1 = np.concatenate(starts), np.concatenate(ends)
    # Orient every edge downwards; horizontal edges never cross a scanline.
    swap = p0[:, 1] > p1[:, 1]
    top = np.where(swap[:, None], p1, p0)
    bottom = np.where(swap[:, None], p0, p1)
    # Rows whose centre y = i + 0.5 satisfies top_y <= y < bottom_y.
    first = np.clip(np.ceil(top[:, 1] - 0.5), 0, height).astype(np.int64)
    stop = np.clip(np.ceil(bottom[:, 1] - 0.5), 0, height).astype(np.int64)
    n_rows = np.maximum(stop - first, 0)
    edge = np.repeat(np.arange(n_rows.size), n_rows)
    offsets = np.arange(edge.size) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    rows = first[edge] + offsets
    y = rows + 0.5
    x0, y0 = top[edge, 0], top[edge, 1]
    x1, y1 = bottom[edge, 0], bottom[edge, 1]
    x = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    # A crossing at x flips the parity of every pixel whose centre j + 0.5 >= x.
    columns = np.clip(np.ceil(x - 0.5), 0, width).astype(np.int64)
    toggles = np.bincount(rows * (width + 1) + columns, minlength=height * (width + 1))
    parity = np.cumsum(toggles.reshape(height, width + 1)[:, :width], axis=1) & 1
    return parity.astype(bool)


def mask_to_polygons(mask: npt.ArrayLike) -> list[FloatArray]:
    """Pixel-edge outlines of a mask: every outer boundary and every hole.

    Parameters
    ----------
    mask : (H, W) bool

    Returns
    -------
    list of (N_k, 2) float64
        ``(x, y)`` corner coordinates, first vertex not repeated, collinear vertices removed. Outer
        boundaries run clockwise on screen (x right, y down), holes counter-clockwise.
        ``polygons_to_mask(result, H, W)`` equals ``mask``.
    """
    image = np.asarray(mask).astype(bool)
    if image.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {image.shape}")
    padded = np.pad(image, 1)
    # Directed boundary edges, foreground on the right-hand side when walking (y down).
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    above, below = padded[:-1, 1:-1], padded[1:, 1:-1]  # pixel pairs across line y = i
    for i, j in zip(*np.nonzero(below & ~above), strict=True):
        edges.setdefault((int(j), int(i)), []).append((int(j) + 1, int(i)))
    for i, j in zip(*np.nonzero(above & ~below), strict=True):
        edges.setdefault((int(j) + 1, int(i)), []).append((int(j), int(i)))
    left, right = padded[1:-1, :-1], padded[1:-1, 1:]  # pixel pairs across line x = j
    for i, j in zip(*np.nonzero(left & ~right), strict=True):
        edges.setdefault((int(j), int(i)), []).append((int(j), int(i) + 1))
    for i, j in zip(*np.nonzero(right & ~left), strict=True):
        edges.setdefault((int(j), int(i) + 1), []).append((int(j), int(i)))
    loops: list[FloatArray] = []
    for start in sorted(edges):
        while edges.get(start):
            loop = [start]
            point = edges[start].pop()
            while point != start:
                loop.append(point)
                point = edges[point].pop()
            loops.append(_drop_collinear(np.asarray(loop, dtype=np.float64)))
    return loops


def _drop_collinear(loop: FloatArray) -> FloatArray:
    """Remove vertices that lie on the straight line through their neighbours."""
    before = np.roll(loop, 1, axis=0)
    after = np.roll(loop, -1, axis=0)
    cross = (loop[:, 0] - before[:, 0]) * (after[:, 1] - loop[:, 1]) - (
        loop[:, 1] - before[:, 1]
    ) * (after[:, 0] - loop[:, 0])
    return loop[cross != 0]
