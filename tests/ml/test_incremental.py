"""Incremental Dawid–Skene: bookkeeping exactness, refit exactness, measured distance to a full fit.

The bounds below sit just outside what bench/consensus_incremental.py measures (numbers in
docs/benchmarks.md): 10 % of the answers held out, then folded in by batches of 20 answers with the
default two sweeps, compared with a full fit on all answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml._crowd import expected_counts, prepare
from ml.datasets import load_crowd_dataset
from ml.dawid_skene import fit_dawid_skene
from ml.incremental import ConsensusState, add_answers, refit, start
from ml.synthetic_crowd import make_crowd


def fold_in(
    tasks: np.ndarray, workers: np.ndarray, labels: np.ndarray, sizes: dict[str, int], seed: int
) -> ConsensusState:
    """Start on a random 90 % of the answers, then add the rest 20 at a time."""
    order = np.random.default_rng(seed).permutation(tasks.size)
    first, rest = order[: int(0.9 * order.size)], order[int(0.9 * order.size) :]
    state = start(tasks[first], workers[first], labels[first], **sizes)
    for begin in range(0, rest.size, 20):
        batch = rest[begin : begin + 20]
        state = add_answers(state, tasks[batch], workers[batch], labels[batch])
    return state


def test_incremental_stays_close_to_a_full_fit_on_a_synthetic_crowd() -> None:
    crowd = make_crowd(
        np.random.default_rng(0), n_tasks=4000, n_workers=100, n_classes=4, labels_per_item=5
    )
    sizes = {"n_tasks": 4000, "n_workers": 100, "n_classes": 4}
    state = fold_in(crowd.tasks, crowd.workers, crowd.labels, sizes, seed=100)
    incremental = state.result()
    full = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, **sizes)
    # measured: agreement 0.9928, accuracy 0.9725 vs 0.9758, confusion diff 0.037
    assert np.mean(incremental.labels == full.labels) >= 0.99
    accuracy_gap = np.mean(full.labels == crowd.true_labels) - np.mean(
        incremental.labels == crowd.true_labels
    )
    assert accuracy_gap <= 0.005
    assert np.abs(incremental.confusion - full.confusion).max() <= 0.05


def test_incremental_stays_close_to_a_full_fit_on_real_answers(crowd_dir: Path) -> None:
    data = load_crowd_dataset(crowd_dir / "d_sentiment")
    state = fold_in(data.tasks, data.workers, data.labels, data.sizes, seed=0)
    incremental = state.result()
    full = fit_dawid_skene(data.tasks, data.workers, data.labels, **data.sizes)
    # measured: agreement 1.000, max posterior difference 0.156, equal accuracy 0.960
    assert np.mean(incremental.labels == full.labels) >= 0.995
    assert abs(data.accuracy(incremental.labels) - data.accuracy(full.labels)) <= 0.005
    assert np.abs(incremental.posteriors - full.posteriors).max() <= 0.25


def test_sufficient_statistics_match_the_posteriors_after_updates() -> None:
    crowd = make_crowd(
        np.random.default_rng(1), n_tasks=300, n_workers=12, n_classes=3, labels_per_item=4
    )
    sizes = {"n_tasks": 300, "n_workers": 12, "n_classes": 3}
    state = fold_in(crowd.tasks, crowd.workers, crowd.labels, sizes, seed=2)
    data = prepare(state.tasks, state.workers, state.labels, **sizes)
    np.testing.assert_allclose(expected_counts(data, state.posteriors), state.counts, atol=1e-9)
    np.testing.assert_allclose(state.class_counts, state.posteriors.sum(axis=0), atol=1e-9)
    assert state.answers_since_refit == crowd.tasks.size - int(0.9 * crowd.tasks.size)


def test_refit_is_exactly_a_full_fit() -> None:
    crowd = make_crowd(
        np.random.default_rng(3), n_tasks=200, n_workers=10, n_classes=2, labels_per_item=3
    )
    sizes = {"n_tasks": 200, "n_workers": 10, "n_classes": 2}
    state = start(crowd.tasks[:400], crowd.workers[:400], crowd.labels[:400], **sizes)
    state = add_answers(
        state, crowd.tasks[400:], crowd.workers[400:], crowd.labels[400:], refit_every=100
    )
    full = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, **sizes)
    assert state.answers_since_refit == 0
    assert np.array_equal(state.posteriors, full.posteriors)
    assert np.array_equal(state.confusion, full.confusion)
    assert np.array_equal(refit(state).posteriors, full.posteriors)


def test_new_tasks_new_players_and_new_gold() -> None:
    state = start([0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 0], n_tasks=2, n_workers=2, n_classes=2)
    before = state.posteriors.copy()
    grown = add_answers(state, [2, 2, 0], [2, 0, 2], [1, 1, 0], n_tasks=3, n_workers=3, gold={1: 1})
    assert grown.posteriors.shape == (3, 2) and grown.counts.shape == (3, 2, 2)
    assert grown.labels.size == 7 and grown.gold.tolist() == [-1, 1, -1]
    assert grown.posteriors[1].tolist() == [0.0, 1.0]
    assert grown.posteriors[2, 1] > 0.5
    # The input state is untouched.
    assert np.array_equal(state.posteriors, before) and state.labels.size == 4
