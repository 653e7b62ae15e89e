"""Server-side validation and repair of player contours, and Dice between masks.

A contour arrives from the browser as a list of ``(x, y)`` points in image pixel coordinates:
``x`` runs along columns, ``y`` along rows, the origin is the top-left corner of the image and the
image covers the continuous rectangle ``[0, width] x [0, height]``. :func:`validate_contour` turns it
into a simple polygon that the rasteriser (``ml/raster.py``) and STAPLE can trust, or raises
:class:`ContourRejected` with a machine-readable ``code`` and a human-readable message the player sees.

Decisions (each one is a parameter of :class:`ContourLimits`):

- **Closure.** A freehand stroke is accepted as closed when its last point lies within
  ``close_tolerance_px`` of its first one (the closing edge is then implied). A click-to-place polygon
  that the player closed explicitly is sent with ``closed=True`` and its closing edge may be any length.
  Otherwise the contour is rejected as ``open_contour``.
- **Image bounds.** Vertices up to ``bounds_margin_px`` outside the image are accepted and the polygon
  is *clipped* geometrically to the image rectangle (clamping vertices would distort the shape). A vertex
  farther out means the client sent coordinates in the wrong frame (screen or zoomed-canvas pixels), so
  the contour is rejected as ``out_of_bounds`` rather than silently mangled.
- **Vertices.** Consecutive points closer than ``duplicate_tolerance_px`` are merged. Fewer than
  ``min_vertices`` distinct vertices is ``too_few_vertices``. More than ``max_vertices`` are simplified
  with Douglas-Peucker (topology-preserving) at growing tolerances up to
  ``max_simplify_tolerance_px``; if that is not enough the contour is ``too_many_vertices``. More than
  ``max_input_points`` raw points are refused before any geometry is done (``too_many_points``).
- **Self-intersections.** Repaired with GEOS ``make_valid`` (``structure`` method: the union of the
  areas the outline encloses). When the repair yields several pieces, the largest is kept if it holds at
  least ``min_kept_fraction`` of the total area (a small loop where a freehand stroke overshot its start);
  otherwise the outline is ambiguous (a bow-tie with two similar lobes) and is rejected as
  ``self_intersecting``. Holes are dropped: a contour is one closed curve.
- **Area.** A polygon with less than ``min_area_px`` square pixels is ``too_small`` (a tap, a line).

The returned polygon does not repeat its first vertex and is oriented counter-clockwise in ``(x, y)``
coordinates (clockwise as seen on screen, where ``y`` points down).

Shapely (GEOS) is used for validity, repair, clipping and simplification: robust predicates and
``make_valid`` are hard to get right by hand, and the dependency is a single wheel with GEOS inside.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.polygon import orient

logger = logging.getLogger(__name__)

Point = tuple[float, float]

#: Stable reason codes, for the client to localise and for tests to assert.
REASONS: dict[str, str] = {
    "malformed": "The outline could not be read: expected a list of [x, y] number pairs.",
    "non_finite": "The outline contains a coordinate that is not a finite number.",
    "too_many_points": "The outline has far too many points.",
    "too_few_vertices": "An outline needs at least three distinct points.",
    "open_contour": "The outline is not closed: finish it near where you started.",
    "out_of_bounds": "The outline goes outside the image.",
    "self_intersecting": "The outline crosses itself into parts of similar size; redraw it as one loop.",
    "too_many_vertices": "The outline has too many vertices even after simplification.",
    "too_small": "The outline encloses too small an area.",
    "degenerate": "The outline encloses no area.",
}


class ContourRejected(ValueError):
    """A contour that cannot be accepted, with a stable ``code`` and a readable message.

    Parameters
    ----------
    code : str
        One of the keys of :data:`REASONS`.
    detail : str, optional
        Extra context appended to the message (never shown without the base message).
    """

    def __init__(self, code: str, detail: str = "") -> None:
        if code not in REASONS:
            raise KeyError(code)
        self.code = code
        self.detail = detail
        message = REASONS[code] + (f" ({detail})" if detail else "")
        super().__init__(message)


@dataclass(frozen=True)
class ContourLimits:
    """Tunable limits of :func:`validate_contour`; the defaults suit web images up to ~4k pixels."""

    min_vertices: int = 3
    max_vertices: int = 2_000
    max_input_points: int = 50_000
    close_tolerance_px: float = 12.0
    bounds_margin_px: float = 8.0
    duplicate_tolerance_px: float = 0.01
    max_simplify_tolerance_px: float = 4.0
    min_kept_fraction: float = 0.8
    min_area_px: float = 16.0


@dataclass(frozen=True)
class CleanContour:
    """A validated contour.

    Attributes
    ----------
    points : tuple of (x, y)
        Vertices of a simple polygon in image pixel coordinates, ``len >= 3``, first vertex not
        repeated, counter-clockwise in ``(x, y)``.
    area_px : float
        Enclosed area in square pixels.
    repairs : tuple of str
        What was changed, in order, from ``deduplicated``, ``closed``, ``clipped``,
        ``self_intersection_repaired``, ``simplified``; empty when the input was already clean.
    """

    points: tuple[Point, ...]
    area_px: float
    repairs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "points": [[x, y] for x, y in self.points],
            "area_px": self.area_px,
            "repairs": list(self.repairs),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleanContour:
        """Inverse of :meth:`to_dict`."""
        return cls(
            points=tuple((float(x), float(y)) for x, y in data["points"]),
            area_px=float(data["area_px"]),
            repairs=tuple(data["repairs"]),
        )


_NUMBER_TYPES = frozenset({int, float, np.float64, np.float32, np.int64, np.int32})


def parse_points(raw: Any, *, max_points: int = ContourLimits.max_input_points) -> np.ndarray:
    """Parse untrusted JSON (a list of ``[x, y]`` pairs) into float points.

    Returns
    -------
    numpy.ndarray of float64, shape (N, 2)
        ``(x, y)`` per row.

    Raises
    ------
    ContourRejected
        ``malformed`` (not a list of number pairs; booleans and strings are not numbers),
        ``too_many_points`` or ``non_finite``.
    """
    if isinstance(raw, np.ndarray):
        raw = raw.tolist()
    if not isinstance(raw, list | tuple):
        raise ContourRejected("malformed")
    if len(raw) > max_points:
        raise ContourRejected("too_many_points", f"{len(raw)} > {max_points}")
    numbers = _NUMBER_TYPES
    try:
        # type() identity rather than isinstance: bool is an int subclass and must be refused
        ok = all(
            len(item) == 2 and type(item[0]) in numbers and type(item[1]) in numbers for item in raw
        )
    except (TypeError, KeyError):
        ok = False
    if not ok:
        raise ContourRejected("malformed")
    points = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise ContourRejected("non_finite")
    return points


def _dedupe(points: np.ndarray, tol: float) -> np.ndarray:
    """Drop each point within ``tol`` of its predecessor; shape (N, 2) -> (M, 2)."""
    if len(points) < 2:
        return points
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.hypot(*np.diff(points, axis=0).T) > tol
    return points[keep]


def _largest_part(geom: shapely.Geometry, min_kept_fraction: float) -> Polygon:
    parts = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon | MultiPolygon)]
    polygons: list[Polygon] = []
    for part in parts:
        polygons.extend(part.geoms if isinstance(part, MultiPolygon) else [part])
    polygons = [p for p in polygons if p.area > 0]
    if not polygons:
        raise ContourRejected("degenerate")
    total = sum(p.area for p in polygons)
    largest = max(polygons, key=lambda p: p.area)
    if len(polygons) > 1 and largest.area < min_kept_fraction * total:
        raise ContourRejected(
            "self_intersecting", f"largest part {largest.area / total:.0%} of the area"
        )
    return largest


def validate_contour(
    raw_points: Iterable[Sequence[float]],
    *,
    width: int,
    height: int,
    closed: bool = False,
    limits: ContourLimits | None = None,
) -> CleanContour:
    """Validate and repair a player's contour.

    Parameters
    ----------
    raw_points : iterable of (x, y)
        The outline as drawn, in image pixel coordinates (``x`` column, ``y`` row), shape ``(N, 2)``.
        A repeated first point at the end is allowed.
    width, height : int
        Image size in pixels; the image covers ``[0, width] x [0, height]``.
    closed : bool
        True when the player closed the polygon explicitly (click-to-place "close" action), so the
        closing edge may be long. False for a freehand stroke, which must end near its start.
    limits : ContourLimits, optional
        Limits; defaults to ``ContourLimits()``.

    Returns
    -------
    CleanContour
        The cleaned simple polygon and the list of repairs applied.

    Raises
    ------
    ContourRejected
        With one of the codes in :data:`REASONS`.
    """
    lim = limits or ContourLimits()
    if width <= 0 or height <= 0:
        raise ValueError("image size must be positive")
    raw = raw_points if isinstance(raw_points, list | tuple | np.ndarray) else list(raw_points)
    points = parse_points(raw, max_points=lim.max_input_points)
    repairs: list[str] = []

    tol = lim.duplicate_tolerance_px
    explicit_repeat = len(points) > 1 and math.dist(points[0], points[-1]) <= tol
    body = points[:-1] if explicit_repeat else points
    deduped = _dedupe(body, tol)
    while len(deduped) > 1 and math.dist(deduped[0], deduped[-1]) <= tol:
        deduped = deduped[:-1]
    if len(deduped) != len(body):
        repairs.append("deduplicated")
    if len(deduped) < lim.min_vertices:
        raise ContourRejected("too_few_vertices", f"{len(deduped)} distinct")

    if not closed and not explicit_repeat:
        gap = math.dist(deduped[0], deduped[-1])
        if gap > lim.close_tolerance_px:
            raise ContourRejected("open_contour", f"ends {gap:.0f} px from its start")
        repairs.append("closed")

    arr = deduped
    m = lim.bounds_margin_px
    if (arr[:, 0] < -m).any() or (arr[:, 0] > width + m).any():
        raise ContourRejected("out_of_bounds", f"x outside [0, {width}]")
    if (arr[:, 1] < -m).any() or (arr[:, 1] > height + m).any():
        raise ContourRejected("out_of_bounds", f"y outside [0, {height}]")

    poly = Polygon(deduped)
    geom: shapely.Geometry = poly
    if not poly.is_valid:
        logger.debug("repairing contour: %s", shapely.is_valid_reason(poly))
        geom = shapely.make_valid(poly, method="structure", keep_collapsed=False)
        repairs.append("self_intersection_repaired")
    if poly.area == 0 and geom.area == 0:
        raise ContourRejected("degenerate")

    outside = (arr[:, 0] < 0) | (arr[:, 0] > width) | (arr[:, 1] < 0) | (arr[:, 1] > height)
    if outside.any():
        geom = shapely.intersection(geom, box(0, 0, width, height))
        repairs.append("clipped")

    shape = _largest_part(geom, lim.min_kept_fraction)
    shape = Polygon(shape.exterior)  # one closed curve: drop holes

    if len(shape.exterior.coords) - 1 > lim.max_vertices:
        tolerance = 0.25
        simplified = shape
        while tolerance <= lim.max_simplify_tolerance_px:
            simplified = shape.simplify(tolerance, preserve_topology=True)
            if len(simplified.exterior.coords) - 1 <= lim.max_vertices:
                break
            tolerance *= 2
        n = len(simplified.exterior.coords) - 1
        if n > lim.max_vertices:
            raise ContourRejected("too_many_vertices", f"{n} > {lim.max_vertices}")
        shape = simplified
        repairs.append("simplified")

    if shape.area < lim.min_area_px:
        raise ContourRejected("too_small", f"{shape.area:.1f} px² < {lim.min_area_px:g} px²")

    shape = orient(shape, sign=1.0)
    coords = [(float(x), float(y)) for x, y in shape.exterior.coords[:-1]]
    return CleanContour(points=tuple(coords), area_px=float(shape.area), repairs=tuple(repairs))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice similarity ``2|A∩B| / (|A| + |B|)`` between two boolean masks.

    Parameters
    ----------
    a, b : numpy.ndarray of bool, shape (H, W)
        Masks of the same shape (any shape is accepted as long as both agree).

    Returns
    -------
    float
        In ``[0, 1]``. Two empty masks agree perfectly and give 1.0.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total
