import math
import subprocess
import sys

import numpy as np

from ml.al.crowd import CrowdSpec, draw_crowd, draw_labels
from ml.al.metrics import accuracy, expected_calibration_error, negative_log_likelihood
from ml.al.report import Curve, labels_to_reach, savings_vs_random


def test_accuracy_nll_and_ece_hand_values():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    assert accuracy(probs, labels) == 0.75
    assert math.isclose(
        negative_log_likelihood(probs, labels),
        -(math.log(0.9) + math.log(0.1) + 2 * math.log(0.6)) / 4,
    )
    # bin 0.9: accuracy 0.5, half the rows; bin 0.6: accuracy 1.0, half the rows.
    assert math.isclose(expected_calibration_error(probs, labels, n_bins=10), 0.5 * 0.4 + 0.5 * 0.4)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


def test_labels_to_reach_interpolates():
    x, y = np.array([100, 200, 300]), np.array([0.5, 0.7, 0.9])
    assert math.isclose(labels_to_reach(x, y, 0.8), 250.0)
    assert labels_to_reach(x, y, 0.4) == 100.0
    assert math.isnan(labels_to_reach(x, y, 0.95))


def test_savings_against_random_final_accuracy():
    def curve(acc):
        a = np.array(acc)
        return Curve(np.array([100.0, 200.0, 300.0]), a, a, a * 0, a * 0, 1)

    curves = {("d", "random"): curve([0.5, 0.6, 0.8]), ("d", "combined"): curve([0.6, 0.8, 0.9])}
    (s,) = savings_vs_random(curves)
    assert (s.strategy, s.target, s.random_labels, s.strategy_labels) == ("combined", 0.8, 300, 200)
    assert math.isclose(s.savings, 1 / 3)


def test_draw_crowd_kinds_and_matrices():
    crowd = draw_crowd(CrowdSpec(n_players=20), 3, np.random.default_rng(0))
    kinds = crowd.kinds.tolist()
    assert (kinds.count("noisy"), kinds.count("spammer"), kinds.count("adversary")) == (6, 3, 1)
    assert kinds.count("reliable") == 10
    np.testing.assert_allclose(crowd.confusions.sum(axis=2), 1.0, atol=1e-12)
    for p in np.flatnonzero(crowd.kinds == "spammer"):
        np.testing.assert_array_equal(crowd.confusions[p], crowd.confusions[p][[0, 0, 0]])
    assert math.isclose(crowd.activity.sum(), 1.0)


def test_draw_labels_never_asks_a_player_twice_for_an_image():
    crowd = draw_crowd(CrowdSpec(n_players=3), 2, np.random.default_rng(1))
    seen = np.zeros((3, 2), dtype=bool)
    truth = np.array([0, 1])
    rng = np.random.default_rng(2)
    got = [draw_labels(crowd, np.array([0, 0, 0, 0]), truth, seen, rng) for _ in range(1)][0]
    images, workers, labels = got
    assert images.tolist() == [0, 0, 0]  # the fourth request finds no player left
    assert sorted(workers.tolist()) == [0, 1, 2]
    assert seen[:, 0].all() and not seen[:, 1].any()
    assert set(labels.tolist()) <= {0, 1}


def test_importing_ml_and_the_numpy_modules_does_not_import_torch_or_django():
    code = (
        "import sys, ml, ml.al, ml.al.acquisition, ml.al.crowd, ml.al.metrics, ml.al.report, "
        "ml.al.data; print(sorted(m for m in ('torch', 'django', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter, a fixed string
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
