"""STAPLE on synthetic masks with known rater quality, and against a per-pixel reference."""

from __future__ import annotations

import numpy as np
import pytest

from ml.staple import staple


def noisy_raters(
    rng: np.random.Generator, truth: np.ndarray, sensitivity: np.ndarray, specificity: np.ndarray
) -> np.ndarray:
    """Masks whose foreground/background pixels are kept with the given probabilities."""
    draws = rng.random((sensitivity.size, *truth.shape))
    keep_fg = draws < sensitivity[:, None, None]
    keep_bg = draws < specificity[:, None, None]
    return np.where(truth[None], keep_fg, ~keep_bg)


def reference_staple(
    masks: np.ndarray, iterations: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel STAPLE exactly as ITK's loop computes it (no pattern compression)."""
    d = masks.reshape(masks.shape[0], -1).astype(float)
    w = d.mean(axis=0)
    prior = d.mean()
    for _ in range(iterations):
        p = (d * w).sum(axis=1) / w.sum()
        q = ((1 - d) * (1 - w)).sum(axis=1) / (1 - w).sum()
        a = np.prod(np.where(d > 0, p[:, None], 1 - p[:, None]), axis=0)
        b = np.prod(np.where(d > 0, 1 - q[:, None], q[:, None]), axis=0)
        w = prior * a / (prior * a + (1 - prior) * b)
    return w.reshape(masks.shape[1:]), p, q


def disc(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2


def test_recovers_known_rater_quality() -> None:
    rng = np.random.default_rng(0)
    truth = disc(256, 80)
    sensitivity = np.array([0.95, 0.9, 0.8, 0.7, 0.99])
    specificity = np.array([0.99, 0.95, 0.97, 0.9, 0.98])
    result = staple(noisy_raters(rng, truth, sensitivity, specificity))
    # ~20,000 foreground pixels: sampling sd of a sensitivity ~0.003.
    assert np.abs(result.sensitivity - sensitivity).max() < 0.015
    assert np.abs(result.specificity - specificity).max() < 0.015
    assert np.mean(result.mask() == truth) > 0.995
    assert result.converged


def test_matches_per_pixel_reference() -> None:
    rng = np.random.default_rng(1)
    truth = disc(64, 20)
    masks = noisy_raters(rng, truth, np.array([0.9, 0.8, 0.7]), np.array([0.95, 0.9, 0.85]))
    result = staple(masks, tol=0.0, max_iter=25)
    probability, sensitivity, specificity = reference_staple(masks, 25)
    np.testing.assert_allclose(result.probability, probability, atol=1e-12)
    np.testing.assert_allclose(result.sensitivity, sensitivity, atol=1e-12)
    np.testing.assert_allclose(result.specificity, specificity, atol=1e-12)
    assert result.n_iter == 25 and not result.converged


def test_many_raters_use_the_packed_path() -> None:
    rng = np.random.default_rng(2)
    truth = disc(48, 15)
    masks = noisy_raters(rng, truth, np.full(70, 0.8), np.full(70, 0.9))
    result = staple(masks, tol=0.0, max_iter=10)
    probability, sensitivity, _ = reference_staple(masks, 10)
    np.testing.assert_allclose(result.probability, probability, atol=1e-9)
    np.testing.assert_allclose(result.sensitivity, sensitivity, atol=1e-12)


def test_identical_raters_give_their_mask() -> None:
    mask = disc(32, 10)
    result = staple(np.stack([mask] * 4))
    assert np.array_equal(result.mask(), mask)
    assert result.probability[~mask].max() < 1e-6 and result.probability[mask].min() > 1 - 1e-6


def test_empty_masks_and_prior_map() -> None:
    empty = staple(np.zeros((3, 8, 8), dtype=bool))
    assert empty.probability.max() == 0.0
    assert empty.sensitivity.tolist() == pytest.approx([1.0] * 3)
    mask = disc(16, 5)
    prior_map = np.full((16, 16), 0.5)
    with_map = staple(np.stack([mask, mask, ~mask]), prior=prior_map)
    assert with_map.probability.shape == (16, 16)
    assert np.array_equal(with_map.mask(), mask)


@pytest.mark.parametrize(
    ("masks", "kwargs", "message"),
    [
        (np.zeros((8, 8)), {}, "raters, H, W"),
        (np.zeros((2, 4, 4)), {"prior": 1.5}, r"\[0, 1\]"),
        (np.zeros((2, 4, 4)), {"prior": np.zeros((3, 3))}, "prior must be"),
    ],
)
def test_rejects_bad_input(masks: np.ndarray, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        staple(masks, **kwargs)  # type: ignore[arg-type]
