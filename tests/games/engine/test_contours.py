import json
import math

import numpy as np
import pytest

from games.engine.contours import (
    REASONS,
    CleanContour,
    ContourLimits,
    ContourRejected,
    dice,
    parse_points,
    validate_contour,
)

SQUARE = [(10.0, 10.0), (50.0, 10.0), (50.0, 50.0), (10.0, 50.0)]


def circle(
    n: int, cx: float = 100.0, cy: float = 100.0, r: float = 50.0
) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(2 * math.pi * i / n), cy + r * math.sin(2 * math.pi * i / n))
        for i in range(n)
    ]


def reject_code(points, **kwargs) -> str:
    with pytest.raises(ContourRejected) as info:
        validate_contour(points, **kwargs)
    return info.value.code


def test_explicitly_closed_square_is_clean_and_unchanged():
    result = validate_contour(SQUARE, width=100, height=100, closed=True)
    assert result.repairs == ()
    assert result.area_px == 1600.0
    assert set(result.points) == set(SQUARE)
    assert len(result.points) == 4


def test_repeated_first_point_counts_as_closed():
    result = validate_contour([*SQUARE, SQUARE[0]], width=100, height=100)
    assert result.repairs == ()
    assert len(result.points) == 4


def test_freehand_near_start_is_closed():
    points = [*SQUARE, (12.0, 14.0)]
    result = validate_contour(points, width=100, height=100)
    assert result.repairs == ("closed",)
    assert len(result.points) == 5


def test_freehand_open_stroke_is_rejected():
    points = [(10.0, 10.0), (50.0, 10.0), (50.0, 50.0), (10.0, 60.0)]
    assert reject_code(points, width=100, height=100) == "open_contour"


def test_explicit_close_accepts_a_long_closing_edge():
    points = [(10.0, 10.0), (50.0, 10.0), (50.0, 50.0), (10.0, 60.0)]
    result = validate_contour(points, width=100, height=100, closed=True)
    assert result.area_px == pytest.approx(40 * 45)


def test_duplicates_are_removed():
    points = [(10.0, 10.0), (10.0, 10.0), (50.0, 10.0), (50.0, 10.0), (50.0, 50.0), (10.0, 50.0)]
    result = validate_contour(points, width=100, height=100, closed=True)
    assert result.repairs == ("deduplicated",)
    assert len(result.points) == 4


def test_too_few_distinct_vertices():
    points = [(10.0, 10.0), (10.0, 10.0), (20.0, 20.0)]
    assert reject_code(points, width=100, height=100, closed=True) == "too_few_vertices"


def test_collinear_points_are_degenerate():
    points = [(10.0, 10.0), (20.0, 20.0), (30.0, 30.0)]
    assert reject_code(points, width=100, height=100, closed=True) == "degenerate"


def test_tiny_polygon_is_too_small():
    points = [(10.0, 10.0), (12.0, 10.0), (12.0, 12.0), (10.0, 12.0)]
    assert reject_code(points, width=100, height=100, closed=True) == "too_small"


def test_slightly_outside_is_clipped_to_the_image():
    points = [(-5.0, 10.0), (50.0, 10.0), (50.0, 105.0), (-5.0, 105.0)]
    result = validate_contour(points, width=100, height=100, closed=True)
    assert result.repairs == ("clipped",)
    assert result.area_px == pytest.approx(50 * 90)
    xs = [p[0] for p in result.points]
    ys = [p[1] for p in result.points]
    assert min(xs) == 0.0 and max(ys) == 100.0


def test_far_outside_is_rejected():
    points = [(10.0, 10.0), (500.0, 10.0), (500.0, 50.0), (10.0, 50.0)]
    assert reject_code(points, width=100, height=100, closed=True) == "out_of_bounds"
    points = [(10.0, -30.0), (50.0, 10.0), (50.0, 50.0), (10.0, 50.0)]
    assert reject_code(points, width=100, height=100, closed=True) == "out_of_bounds"


def test_symmetric_bow_tie_is_rejected():
    bow = [(0.0, 0.0), (40.0, 40.0), (40.0, 0.0), (0.0, 40.0)]
    assert reject_code(bow, width=100, height=100, closed=True) == "self_intersecting"


def test_overshoot_loop_is_repaired_to_the_large_part():
    # A freehand stroke that overshoots its start and makes a small loop.
    points = [(10.0, 10.0), (60.0, 10.0), (60.0, 60.0), (10.0, 60.0), (10.0, 12.0), (14.0, 8.0)]
    result = validate_contour(points, width=100, height=100, closed=True)
    assert "self_intersection_repaired" in result.repairs
    assert result.area_px == pytest.approx(50 * 50, rel=0.02)


def test_lopsided_bow_tie_keeps_largest_lobe():
    bow = [(0.0, 0.0), (90.0, 90.0), (90.0, 0.0), (0.0, 10.0)]
    result = validate_contour(bow, width=100, height=100, closed=True)
    assert result.repairs == ("self_intersection_repaired",)
    xs = [p[0] for p in result.points]
    assert min(xs) > 0.0  # the small lobe at x≈0 was dropped
    assert max(xs) == 90.0


def test_too_many_vertices_are_simplified():
    points = circle(5000)
    result = validate_contour(points, width=200, height=200, closed=True)
    assert result.repairs == ("simplified",)
    assert 3 <= len(result.points) <= 2000
    assert result.area_px == pytest.approx(math.pi * 50**2, rel=0.01)


def test_vertices_that_cannot_be_simplified_are_rejected():
    # A zig-zag comb with teeth much deeper than the largest simplification tolerance.
    teeth = 1500
    top = [(10.0 + i * 0.5, 10.0 if i % 2 == 0 else 90.0) for i in range(2 * teeth)]
    points = [*top, (top[-1][0], 95.0), (10.0, 95.0)]
    limits = ContourLimits(max_vertices=2000)
    with pytest.raises(ContourRejected) as info:
        validate_contour(points, width=2000, height=100, closed=True, limits=limits)
    assert info.value.code == "too_many_vertices"


def test_too_many_raw_points_rejected_before_geometry():
    points = [(1.0, 1.0)] * 50_001
    assert reject_code(points, width=100, height=100) == "too_many_points"


def test_result_is_counter_clockwise_in_xy():
    clockwise = list(reversed(SQUARE))
    result = validate_contour(clockwise, width=100, height=100, closed=True)
    xs = np.array([p[0] for p in result.points])
    ys = np.array([p[1] for p in result.points])
    signed = 0.5 * np.sum(xs * np.roll(ys, -1) - np.roll(xs, -1) * ys)
    assert signed > 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("nope", "malformed"),
        ([[1, 2, 3]], "malformed"),
        ([[1, "2"]], "malformed"),
        ([[True, 2]], "malformed"),
        ([[1.0, float("nan")]], "non_finite"),
        ([[float("inf"), 1.0]], "non_finite"),
    ],
)
def test_parse_points_rejects_bad_input(raw, code):
    with pytest.raises(ContourRejected) as info:
        parse_points(raw)
    assert info.value.code == code


def test_rejection_message_is_readable():
    error = ContourRejected("open_contour", "ends 40 px from its start")
    assert str(error) == REASONS["open_contour"] + " (ends 40 px from its start)"
    with pytest.raises(KeyError):
        ContourRejected("no_such_reason")


def test_clean_contour_round_trip():
    result = validate_contour(circle(50), width=200, height=200, closed=True)

    assert CleanContour.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_dice_values():
    a = np.zeros((4, 4), dtype=bool)
    b = np.zeros((4, 4), dtype=bool)
    assert dice(a, b) == 1.0
    a[0, :2] = True
    assert dice(a, b) == 0.0
    b[0, 1:3] = True
    assert dice(a, b) == 0.5
    assert dice(a, a) == 1.0
    with pytest.raises(ValueError):
        dice(a, np.zeros((3, 4), dtype=bool))
