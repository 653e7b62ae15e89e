"""STAPLE: simultaneous truth and performance level estimation for binary masks.

Warfield, Zou & Wells (2004), "Simultaneous truth and performance level estimation (STAPLE): an
algorithm for the validation of image segmentation", IEEE TMI 23(7). Each rater ``j`` has a
sensitivity ``p_j`` and a specificity ``q_j``; each pixel a latent true value with prior ``f``.
EM alternates

* M-step: ``p_j = sum_i W_i D_ij / sum_i W_i``, ``q_j = sum_i (1 - W_i)(1 - D_ij) / sum_i (1 - W_i)``;
* E-step: ``W_i = f a_i / (f a_i + (1 - f) b_i)`` with ``a_i = prod_j p_j^D (1 - p_j)^(1 - D)`` and
  ``b_i = prod_j q_j^(1 - D) (1 - q_j)^D``.

As in ITK's ``STAPLEImageFilter`` the initial ``W`` is the mean of the masks, the default prior is the
mean foreground fraction over all raters and pixels (fixed during EM), and iteration stops when no
``p_j`` or ``q_j`` moves by more than ``tol``.

With a scalar prior, ``W_i`` depends only on the pixel's vote pattern (which raters marked it), so the
EM runs on the distinct patterns weighted by their pixel counts — at most ``2**raters`` of them and
usually a few hundred — and the result is mapped back to the image: identical arithmetic, a fraction
of the work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ml._crowd import FloatArray

__all__ = ["StapleResult", "staple"]

logger = logging.getLogger(__name__)

# Keeps p, q strictly inside (0, 1) so that products of (1 - p) never hit 0/0 (ITK would give NaN).
_EPS = 1e-10


@dataclass(frozen=True, eq=False)
class StapleResult:
    """Output of :func:`staple`.

    Attributes
    ----------
    probability : (H, W) float64
        Posterior probability that each pixel is foreground.
    sensitivity : (raters,) float64
        P(rater marks a pixel | it is foreground).
    specificity : (raters,) float64
        P(rater leaves a pixel | it is background).
    prior : float
        Foreground prior used (mean of the prior map when a map was given).
    n_iter : int
        EM iterations performed.
    converged : bool
        Whether ``tol`` was reached before ``max_iter``.
    """

    probability: FloatArray
    sensitivity: FloatArray
    specificity: FloatArray
    prior: float
    n_iter: int
    converged: bool

    def mask(self, threshold: float = 0.5) -> npt.NDArray[np.bool_]:
        """Consensus mask: ``probability >= threshold``, shape ``(H, W)``."""
        return self.probability >= threshold


def staple(
    masks: npt.ArrayLike,
    *,
    tol: float = 1e-7,
    max_iter: int = 1000,
    prior: float | npt.ArrayLike | None = None,
) -> StapleResult:
    """Estimate the true mask and each rater's sensitivity and specificity.

    Parameters
    ----------
    masks : (raters, H, W) bool
        One binary mask per rater (any array whose non-zero entries mean foreground).
    tol : float
        Stop when no sensitivity or specificity changes by more than ``tol`` between iterations
        (ITK's criterion: squared change <= 1e-14, i.e. ``tol = 1e-7``).
    max_iter : int
        Iteration cap.
    prior : float, (H, W) array, or None
        Foreground prior probability; None uses the mean of all masks (ITK's default).

    Returns
    -------
    StapleResult

    Raises
    ------
    ValueError
        When ``masks`` is not 3-D with at least one rater, or ``prior`` is outside [0, 1].
    """
    stack = np.asarray(masks)
    if stack.ndim != 3 or stack.shape[0] < 1:
        raise ValueError(f"masks must have shape (raters, H, W), got {stack.shape}")
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    stack = stack.astype(bool, copy=False)
    raters, height, width = stack.shape
    flat = stack.reshape(raters, -1)

    if prior is None:
        prior_map: FloatArray | float = float(flat.mean()) if flat.size else 0.0
    else:
        prior_array = np.asarray(prior, dtype=np.float64)
        if prior_array.ndim == 0:
            prior_map = float(prior_array)
        elif prior_array.shape == (height, width):
            prior_map = prior_array.reshape(-1)
        else:
            raise ValueError(f"prior must be a scalar or a ({height}, {width}) map")
        if np.any((prior_array < 0) | (prior_array > 1)):
            raise ValueError("prior must lie in [0, 1]")

    if isinstance(prior_map, float):
        patterns, inverse, weights = _vote_patterns(flat)
        votes, prior_vector = patterns, np.full(patterns.shape[1], prior_map)
    else:
        votes, inverse, weights, prior_vector = flat, None, np.ones(flat.shape[1]), prior_map

    posterior, sensitivity, specificity, n_iter, converged = _em(
        votes, weights, prior_vector, tol, max_iter
    )
    probability = posterior[inverse] if inverse is not None else posterior
    logger.debug("STAPLE: %d raters, %d iterations, converged=%s", raters, n_iter, converged)
    return StapleResult(
        probability=probability.reshape(height, width),
        sensitivity=sensitivity,
        specificity=specificity,
        prior=float(np.mean(prior_vector)) if prior_vector.size else 0.0,
        n_iter=n_iter,
        converged=converged,
    )


def _vote_patterns(
    flat: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp], FloatArray]:
    """Distinct vote columns of ``flat`` (raters, n), the column index of each pixel, and counts."""
    raters, n = flat.shape
    if raters <= 62:
        codes = np.zeros(n, dtype=np.int64)
        for j in range(raters):
            codes |= flat[j].astype(np.int64) << j
        if raters <= 20:
            # Counting sort over the 2**raters possible codes beats np.unique's sort.
            histogram = np.bincount(codes, minlength=1 << raters)
            unique = np.flatnonzero(histogram)
            lookup = np.zeros(histogram.size, dtype=np.intp)
            lookup[unique] = np.arange(unique.size)
            inverse, counts = lookup[codes], histogram[unique]
        else:
            unique, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
        patterns = ((unique[None, :] >> np.arange(raters)[:, None]) & 1).astype(bool)
    else:
        packed = np.packbits(flat, axis=0)  # (ceil(raters / 8), n)
        unique_cols, inverse, counts = np.unique(
            packed, axis=1, return_inverse=True, return_counts=True
        )
        patterns = np.unpackbits(unique_cols, axis=0, count=raters).astype(bool)
    return patterns, inverse.reshape(-1), counts.astype(np.float64)


def _em(
    votes: npt.NDArray[np.bool_],
    weights: FloatArray,
    prior: FloatArray,
    tol: float,
    max_iter: int,
) -> tuple[FloatArray, FloatArray, FloatArray, int, bool]:
    """STAPLE EM on weighted vote columns.

    Parameters
    ----------
    votes : (raters, m) bool
    weights : (m,)
        Pixels per column.
    prior : (m,)
        Foreground prior per column.

    Returns
    -------
    posterior (m,), sensitivity (raters,), specificity (raters,), iterations, converged
    """
    raters = votes.shape[0]
    d = votes.astype(np.float64)
    not_d = 1.0 - d
    posterior = d.mean(axis=0)  # initial W: mean of the masks
    sensitivity = np.full(raters, np.nan)
    specificity = np.full(raters, np.nan)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        fg = weights * posterior
        bg = weights * (1.0 - posterior)
        fg_total, bg_total = fg.sum(), bg.sum()
        # No foreground (or background) mass anywhere: every rater agrees with it perfectly.
        new_sens = d @ fg / fg_total if fg_total > 0 else np.ones(raters)
        new_spec = not_d @ bg / bg_total if bg_total > 0 else np.ones(raters)
        new_sens = np.clip(new_sens, _EPS, 1.0 - _EPS)
        new_spec = np.clip(new_spec, _EPS, 1.0 - _EPS)
        log_a = np.log(new_sens) @ d + np.log1p(-new_sens) @ not_d
        log_b = np.log1p(-new_spec) @ d + np.log(new_spec) @ not_d
        with np.errstate(divide="ignore"):
            logit = np.log(prior) - np.log1p(-prior) + log_a - log_b
        posterior = 0.5 * (1.0 + np.tanh(0.5 * logit))  # logistic, stable for +-inf
        change = max(
            float(np.max(np.abs(new_sens - sensitivity), initial=0.0)),
            float(np.max(np.abs(new_spec - specificity), initial=0.0)),
        )
        sensitivity, specificity = new_sens, new_spec
        if n_iter > 1 and change <= tol:
            converged = True
            break
    return posterior, sensitivity, specificity, n_iter, converged
