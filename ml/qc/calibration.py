"""Thresholds at a target false-positive rate and the detection metrics used to judge them (numpy)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


def threshold_at_fpr(negative_scores: np.ndarray, target_fpr: float) -> float:
    """Smallest threshold whose false-positive rate on clean images is at most ``target_fpr``.

    An image is flagged when its score is strictly greater than the threshold. With ``n`` clean
    scores, at most ``floor(target_fpr * n)`` of them lie above the returned value, and no lower
    score of the sample would keep that bound.

    Parameters
    ----------
    negative_scores : np.ndarray, shape (n,)
        Scores of clean (in-distribution, uncorrupted) calibration images, finite.
    target_fpr : float
        In [0, 1).

    Returns
    -------
    float
        One of the calibration scores.
    """
    scores = np.asarray(negative_scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("need at least one calibration score")
    if not np.all(np.isfinite(scores)):
        raise ValueError("calibration scores must be finite")
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}")
    allowed = math.floor(target_fpr * scores.size + 1e-9)
    descending = np.sort(scores)[::-1]
    return float(descending[allowed])


def false_positive_rate(negative_scores: np.ndarray, threshold: float) -> float:
    """Share of clean scores strictly above ``threshold``."""
    scores = np.asarray(negative_scores, dtype=np.float64).ravel()
    return float(np.mean(scores > threshold))


def roc_auc(negative_scores: np.ndarray, positive_scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U / (n_neg · n_pos)); ties count one half.

    Parameters
    ----------
    negative_scores : np.ndarray, shape (n_neg,)
    positive_scores : np.ndarray, shape (n_pos,)

    Returns
    -------
    float
        Probability that a random positive scores above a random negative.
    """
    neg = np.asarray(negative_scores, dtype=np.float64).ravel()
    pos = np.asarray(positive_scores, dtype=np.float64).ravel()
    if neg.size == 0 or pos.size == 0:
        raise ValueError("need at least one negative and one positive score")
    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


@dataclass(frozen=True)
class DetectionStats:
    """Detection figures at one threshold (flag when score > threshold)."""

    auc: float
    threshold: float
    precision: float
    recall: float
    fpr: float
    n_negative: int
    n_positive: int


def detection_stats(
    negative_scores: np.ndarray, positive_scores: np.ndarray, threshold: float
) -> DetectionStats:
    """AUC, and precision / recall / false-positive rate at ``threshold``.

    Parameters
    ----------
    negative_scores : np.ndarray, shape (n_neg,)
    positive_scores : np.ndarray, shape (n_pos,)
    threshold : float

    Returns
    -------
    DetectionStats
        Precision is 1.0 when nothing is flagged (no false alarm was raised).
    """
    neg = np.asarray(negative_scores, dtype=np.float64).ravel()
    pos = np.asarray(positive_scores, dtype=np.float64).ravel()
    tp = int(np.sum(pos > threshold))
    fp = int(np.sum(neg > threshold))
    return DetectionStats(
        auc=roc_auc(neg, pos),
        threshold=float(threshold),
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / pos.size,
        fpr=fp / neg.size,
        n_negative=int(neg.size),
        n_positive=int(pos.size),
    )
