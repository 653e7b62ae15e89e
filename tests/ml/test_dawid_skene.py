"""Dawid–Skene, one-coin and majority vote on synthetic crowds and hand-computed cases."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ml.dawid_skene import fit_dawid_skene, fit_one_coin
from ml.majority import majority_vote
from ml.synthetic_crowd import SyntheticCrowd, make_crowd


def sizes(crowd: SyntheticCrowd) -> dict[str, int]:
    return {"n_tasks": crowd.n_tasks, "n_workers": crowd.n_workers, "n_classes": crowd.n_classes}


def test_recovers_known_confusion_matrices() -> None:
    crowd = make_crowd(
        np.random.default_rng(1),
        n_tasks=3000,
        n_workers=20,
        n_classes=3,
        labels_per_item=8,
        priors=[0.5, 0.3, 0.2],
    )
    result = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, **sizes(crowd))
    # Each player answers ~1200 items, ~240 per rarest class: sampling error ~0.03 per cell.
    assert np.abs(result.confusion - crowd.confusion).max() < 0.08
    assert np.abs(result.priors - crowd.priors).max() < 0.02
    assert np.mean(result.labels == crowd.true_labels) > 0.99
    assert result.converged
    np.testing.assert_allclose(result.confusion.sum(axis=2), 1.0, atol=1e-12)
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0, atol=1e-12)


def test_hand_computed_single_iteration() -> None:
    # Task 0: answers 0, 0, 1; task 1: answers 1, 1, 1; players 0, 1, 2 answer both.
    tasks = np.array([0, 0, 0, 1, 1, 1])
    workers = np.array([0, 1, 2, 0, 1, 2])
    labels = np.array([0, 0, 1, 1, 1, 1])
    result = fit_dawid_skene(
        tasks, workers, labels, n_tasks=2, n_workers=3, n_classes=2,
        smoothing=1.0, prior_smoothing=1.0, max_iter=1,
    )  # fmt: skip
    # Majority start: task 0 = (2/3, 1/3), task 1 = (0, 1). M-step with +1 per cell:
    f = Fraction
    agree = [[f(5, 8), f(3, 8)], [f(2, 5), f(3, 5)]]  # players 0 and 1, [true][given]
    dissent = [[f(3, 8), f(5, 8)], [f(3, 10), f(7, 10)]]  # player 2
    priors = [f(5, 12), f(7, 12)]
    task0 = [priors[c] * agree[c][0] * agree[c][0] * dissent[c][1] for c in (0, 1)]
    task1 = [priors[c] * agree[c][1] * agree[c][1] * dissent[c][1] for c in (0, 1)]
    assert result.n_iter == 1
    assert result.posteriors[0, 0] == pytest.approx(float(task0[0] / sum(task0)), rel=1e-12)
    assert result.posteriors[1, 0] == pytest.approx(float(task1[0] / sum(task1)), rel=1e-12)
    expected_ll = float(np.log(float(sum(task0))) + np.log(float(sum(task1))))
    penalty = float(np.log([float(x) for row in agree + agree + dissent for x in row]).sum())
    penalty += float(np.log([float(p) for p in priors]).sum())
    assert result.log_likelihood == [pytest.approx(expected_ll + penalty, rel=1e-12)]
    assert result.labels.tolist() == [0, 1]


def test_agrees_with_majority_when_every_player_is_perfect() -> None:
    perfect = np.tile(np.eye(4), (15, 1, 1))
    crowd = make_crowd(
        np.random.default_rng(2),
        n_tasks=500,
        n_workers=15,
        n_classes=4,
        labels_per_item=3,
        confusion=perfect,
    )
    ds = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, **sizes(crowd))
    mv = majority_vote(crowd.tasks, crowd.workers, crowd.labels, **sizes(crowd))
    assert ds.labels.tolist() == mv.labels.tolist() == crowd.true_labels.tolist()
    assert mv.confidence.min() == 1.0
    assert ds.confidence.min() > 0.999
    assert np.einsum("wcc->wc", ds.confusion).min() > 0.97


def test_gold_clamping_overrides_an_adversarial_majority() -> None:
    # Three of five players always give the wrong class (cyclic shift): the majority is wrong.
    rng = np.random.default_rng(3)
    good = np.tile(np.eye(3) * 0.85 + 0.05, (2, 1, 1))
    bad = np.tile(np.roll(np.eye(3), 1, axis=1) * 0.85 + 0.05, (3, 1, 1))
    crowd = make_crowd(
        rng,
        n_tasks=600,
        n_workers=5,
        n_classes=3,
        labels_per_item=5,
        confusion=np.concatenate([good, bad]),
    )
    plain = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, **sizes(crowd))
    assert np.mean(plain.labels == crowd.true_labels) < 0.2
    gold_tasks = np.arange(0, 600, 10)
    gold = {int(t): int(crowd.true_labels[t]) for t in gold_tasks}
    clamped = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, gold=gold, **sizes(crowd))
    assert np.mean(clamped.labels == crowd.true_labels) > 0.98
    assert (
        clamped.posteriors[gold_tasks].tolist() == np.eye(3)[crowd.true_labels[gold_tasks]].tolist()
    )
    # The adversarial players' matrices are learnt as such (informed by the gold tasks).
    assert np.einsum("wcc->w", clamped.confusion[2:]).max() / 3 < 0.2
    as_array = np.full(600, -1)
    as_array[gold_tasks] = crowd.true_labels[gold_tasks]
    again = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, gold=as_array, **sizes(crowd))
    assert np.array_equal(again.posteriors, clamped.posteriors)


def test_players_and_items_with_one_answer() -> None:
    # Task 2 has a single answer, from player 3 who answers nothing else.
    tasks = np.array([0, 0, 0, 1, 1, 1, 2])
    workers = np.array([0, 1, 2, 0, 1, 2, 3])
    labels = np.array([1, 1, 0, 0, 0, 0, 1])
    result = fit_dawid_skene(tasks, workers, labels, n_tasks=4, n_workers=5, n_classes=2)
    assert np.isfinite(result.posteriors).all() and np.isfinite(result.confusion).all()
    assert 0.0 < result.confusion[3].min() and result.confusion[3].max() < 1.0
    assert result.labels[2] == 1
    # Task 3 has no answer: its posterior is the prior; player 4 has none: uniform rows.
    np.testing.assert_allclose(result.posteriors[3], result.priors)
    assert result.confusion[4].tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_fifty_classes() -> None:
    crowd = make_crowd(
        np.random.default_rng(4), n_tasks=2000, n_workers=40, n_classes=50, labels_per_item=5
    )
    result = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, **sizes(crowd))
    assert result.posteriors.shape == (2000, 50)
    assert result.confusion.shape == (40, 50, 50)
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0, atol=1e-12)
    assert np.mean(result.labels == crowd.true_labels) > 0.97


def test_deterministic_and_non_decreasing_objective() -> None:
    crowd = make_crowd(
        np.random.default_rng(5), n_tasks=800, n_workers=30, n_classes=3, labels_per_item=4
    )
    first = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, **sizes(crowd))
    second = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, **sizes(crowd))
    assert np.array_equal(first.posteriors, second.posteriors)
    assert np.array_equal(first.confusion, second.confusion)
    assert first.log_likelihood == second.log_likelihood
    steps = np.diff(first.log_likelihood)
    assert steps.min() >= -1e-9 * abs(first.log_likelihood[0])


def test_max_iter_caps_the_run() -> None:
    crowd = make_crowd(
        np.random.default_rng(6), n_tasks=300, n_workers=10, n_classes=2, labels_per_item=3
    )
    result = fit_dawid_skene(
        crowd.tasks, crowd.workers, crowd.labels, tol=0.0, max_iter=3, **sizes(crowd)
    )
    assert result.n_iter == 3
    assert not result.converged


def test_one_coin_recovers_player_accuracy() -> None:
    rng = np.random.default_rng(7)
    accuracy = rng.uniform(0.5, 0.95, size=25)
    off = (1 - accuracy) / 3
    confusion = np.repeat(off[:, None, None], 4, axis=1).repeat(4, axis=2)
    confusion[:, np.arange(4), np.arange(4)] = accuracy[:, None]
    crowd = make_crowd(
        rng, n_tasks=3000, n_workers=25, n_classes=4, labels_per_item=5, confusion=confusion
    )
    result = fit_one_coin(crowd.tasks, crowd.workers, crowd.labels, **sizes(crowd))
    assert result.method == "one-coin"
    # ~600 answers per player: sampling sd ~0.02, 25 players.
    assert np.abs(result.confusion[:, 0, 0] - accuracy).max() < 0.06
    assert np.mean(result.labels == crowd.true_labels) > 0.95


def test_majority_vote_exact_shares_and_ties() -> None:
    tasks = np.array([0, 0, 0, 1, 1, 2])
    workers = np.array([0, 1, 2, 0, 1, 0])
    labels = np.array([2, 2, 0, 1, 0, 1])
    result = majority_vote(tasks, workers, labels, n_tasks=4, n_workers=3, n_classes=3, gold={2: 2})
    assert result.posteriors.tolist() == [
        [1 / 3, 0.0, 2 / 3],
        [0.5, 0.5, 0.0],
        [0.0, 0.0, 1.0],  # gold overrides the single vote
        [1 / 3, 1 / 3, 1 / 3],  # no answer
    ]
    assert result.labels.tolist() == [2, 0, 2, 0]  # ties go to the lowest class
    assert result.confidence.tolist() == [2 / 3, 0.5, 1.0, 1 / 3]
    assert result.n_iter == 0 and result.log_likelihood == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tasks": [0, 1], "workers": [0], "labels": [0, 1]}, "equal lengths"),
        ({"tasks": [0, 5], "workers": [0, 0], "labels": [0, 1]}, "tasks codes"),
        ({"tasks": [0, 1], "workers": [0, 0], "labels": [0, 2]}, "labels codes"),
        ({"tasks": [0.5, 1], "workers": [0, 0], "labels": [0, 1]}, "integer codes"),
        ({"tasks": [0, 1], "workers": [0, 0], "labels": [0, 1], "gold": {0: 7}}, "gold labels"),
    ],
)
def test_rejects_malformed_inputs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_dawid_skene(n_tasks=2, n_workers=1, n_classes=2, **kwargs)  # type: ignore[arg-type]


def test_results_are_read_only() -> None:
    result = fit_dawid_skene([0, 0], [0, 1], [1, 1], n_tasks=1, n_workers=2, n_classes=2)
    with pytest.raises(ValueError, match="read-only"):
        result.posteriors[0, 0] = 0.5
