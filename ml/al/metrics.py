"""Classification metrics on probability arrays (numpy only)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def accuracy(probs: NDArray[np.floating], labels: NDArray[np.integer]) -> float:
    """Share of rows whose most probable class is the label.

    Parameters
    ----------
    probs : (n, K) array
    labels : (n,) int array

    Returns
    -------
    float in [0, 1] (0.0 for ``n = 0``)
    """
    y = np.asarray(labels)
    if len(y) == 0:
        return 0.0
    return float(np.mean(np.argmax(np.asarray(probs), axis=1) == y))


def negative_log_likelihood(probs: NDArray[np.floating], labels: NDArray[np.integer]) -> float:
    """Mean ``-log p[label]`` (probabilities clipped at 1e-12).

    Parameters
    ----------
    probs : (n, K) array
    labels : (n,) int array
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12))))


def expected_calibration_error(
    probs: NDArray[np.floating], labels: NDArray[np.integer], *, n_bins: int = 15
) -> float:
    """Expected calibration error (Guo et al. 2017) with equal-width confidence bins.

    ``ECE = sum_b (|B_b| / n) * |acc(B_b) - conf(B_b)|`` where the confidence of a row is its top
    probability and bin ``b`` holds confidences in ``((b-1)/n_bins, b/n_bins]`` (the first bin
    also holds 0).

    Parameters
    ----------
    probs : (n, K) array
    labels : (n,) int array
    n_bins : int

    Returns
    -------
    float in [0, 1] (0.0 for ``n = 0``)
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if len(y) == 0:
        return 0.0
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
