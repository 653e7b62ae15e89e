import numpy as np
import pytest

from ml.qc.calibration import detection_stats, false_positive_rate, roc_auc, threshold_at_fpr


@pytest.mark.parametrize(
    ("fpr", "expected"), [(0.0, 0.99), (0.01, 0.98), (0.05, 0.94), (0.29, 0.70)]
)
def test_threshold_at_fpr_exact(fpr, expected):
    scores = np.arange(100) / 100.0
    rng = np.random.default_rng(1)
    threshold = threshold_at_fpr(rng.permutation(scores), fpr)
    assert threshold == pytest.approx(expected)
    assert false_positive_rate(scores, threshold) == pytest.approx(fpr)


def test_threshold_with_ties_never_exceeds_target():
    scores = np.array([0.0, 1.0, 1.0, 1.0, 2.0])
    # Two false positives allowed, but the tie at 1.0 would make four: only 2.0 stays above.
    threshold = threshold_at_fpr(scores, 0.5)
    assert threshold == 1.0
    assert false_positive_rate(scores, threshold) == 0.2


def test_threshold_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        threshold_at_fpr(np.array([]), 0.1)
    with pytest.raises(ValueError, match="target_fpr"):
        threshold_at_fpr(np.array([1.0]), 1.0)
    with pytest.raises(ValueError, match="finite"):
        threshold_at_fpr(np.array([1.0, np.nan]), 0.1)


def test_roc_auc_exact_with_ties():
    assert roc_auc([0, 1], [2, 3]) == 1.0
    assert roc_auc([2, 3], [0, 1]) == 0.0
    # pairs (neg, pos): (0,1) win, (0,2) win, (1,1) tie, (1,2) win -> 3.5 / 4
    assert roc_auc([0, 1], [1, 2]) == 0.875


def test_detection_stats_exact():
    stats = detection_stats([0.1, 0.2, 0.9], [0.5, 0.8, 0.95, 0.05], threshold=0.4)
    assert stats.precision == 3 / 4
    assert stats.recall == 3 / 4
    assert stats.fpr == 1 / 3
    assert stats.auc == pytest.approx(7 / 12)
    assert (stats.n_negative, stats.n_positive) == (3, 4)
