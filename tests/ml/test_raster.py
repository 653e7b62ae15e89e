"""Polygon ⇄ mask conversion under the pixel-centre rule."""

from __future__ import annotations

import numpy as np
import pytest

from ml.raster import mask_to_polygons, polygon_to_mask, polygons_to_mask


def centre_inside(points: np.ndarray, x: float, y: float) -> bool:
    """Brute-force crossing test with the same half-open rule (ray to the left, x_cross <= x)."""
    inside = False
    for (x0, y0), (x1, y1) in zip(points, np.roll(points, -1, axis=0), strict=True):
        if min(y0, y1) <= y < max(y0, y1):
            crossing = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            if crossing <= x:
                inside = not inside
    return inside


def test_axis_aligned_square_covers_exactly_its_pixels() -> None:
    mask = polygon_to_mask([(1, 1), (3, 1), (3, 4), (1, 4)], 5, 5)
    expected = np.zeros((5, 5), dtype=bool)
    expected[1:4, 1:3] = True
    assert np.array_equal(mask, expected)


def test_centre_on_edge_goes_to_the_left_and_top_polygon() -> None:
    # Unit square around pixel (0, 0)'s centre edges: [0.5, 1.5] contains only centre (0.5, 0.5).
    assert np.argwhere(
        polygon_to_mask([(0.5, 0.5), (1.5, 0.5), (1.5, 1.5), (0.5, 1.5)], 3, 3)
    ).tolist() == [[0, 0]]
    # Two triangles sharing a diagonal partition the square's pixels without overlap or gap.
    a = polygon_to_mask([(0, 0), (6, 0), (6, 6)], 6, 6)
    b = polygon_to_mask([(0, 0), (6, 6), (0, 6)], 6, 6)
    assert not (a & b).any() and (a | b).all()


def test_triangle_hand_case() -> None:
    # Right triangle (0,0)-(4,0)-(0,4): centre (j+.5, i+.5) inside iff j + i + 1 < 4 (or on the
    # hypotenuse, which is a right edge here and therefore outside).
    mask = polygon_to_mask([(0, 0), (4, 0), (0, 4)], 4, 4)
    expected = [[j + i + 1 < 4 for j in range(4)] for i in range(4)]
    assert mask.tolist() == expected


def test_random_polygons_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        # Half-pixel grid: many centres fall exactly on edges and vertices.
        points = np.round(rng.uniform(-2, 14, size=(int(rng.integers(3, 9)), 2)) * 2) / 2
        mask = polygon_to_mask(points, 12, 10)
        expected = [[centre_inside(points, j + 0.5, i + 0.5) for j in range(10)] for i in range(12)]
        assert mask.tolist() == expected


def test_hole_with_even_odd_rule() -> None:
    outer = [(0, 0), (6, 0), (6, 6), (0, 6)]
    hole = [(2, 2), (4, 2), (4, 4), (2, 4)]
    mask = polygons_to_mask([outer, hole], 6, 6)
    assert mask.sum() == 32 and not mask[2:4, 2:4].any()


def test_mask_to_polygons_round_trip() -> None:
    rng = np.random.default_rng(1)
    for _ in range(10):
        mask = rng.random((20, 30)) < 0.45
        assert np.array_equal(polygons_to_mask(mask_to_polygons(mask), 20, 30), mask)
    ring = np.zeros((7, 7), dtype=bool)
    ring[1:6, 1:6] = True
    ring[3, 3] = False
    loops = mask_to_polygons(ring)
    # Outer boundary clockwise on screen, the hole counter-clockwise.
    assert [loop.tolist() for loop in loops] == [
        [[1.0, 1.0], [6.0, 1.0], [6.0, 6.0], [1.0, 6.0]],
        [[3.0, 3.0], [3.0, 4.0], [4.0, 4.0], [4.0, 3.0]],
    ]


def test_degenerate_and_bad_input() -> None:
    assert not polygon_to_mask([(0, 0), (3, 3)], 4, 4).any()
    assert not polygon_to_mask([(0, 0), (3, 0), (3, 3)], 0, 4).any()
    with pytest.raises(ValueError, match="shape"):
        polygon_to_mask([1, 2, 3], 4, 4)
    with pytest.raises(ValueError, match="finite"):
        polygon_to_mask([(0, 0), (np.nan, 1), (2, 2)], 4, 4)
