"""Synthetic crowds with known confusion matrices, for tests and benchmarks.

A crowd is drawn as: true classes from ``priors``; for each player a confusion matrix whose row ``c``
puts ``accuracy_w`` on class ``c`` and spreads the rest over the other classes with a Dirichlet(1)
draw; each item gets ``labels_per_item`` *distinct* players; each answer is drawn from the player's
row for the item's true class. Everything comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ml._crowd import FloatArray, IntArray

__all__ = ["SyntheticCrowd", "make_crowd", "sample_answers"]


@dataclass(frozen=True, eq=False)
class SyntheticCrowd:
    """Answers plus the truth that generated them.

    Attributes
    ----------
    tasks, workers, labels : (n_answers,) int64
        The answers, sorted by task.
    true_labels : (n_tasks,) int64
    confusion : (n_workers, n_classes, n_classes) float64
        Generating confusion matrices, ``[w, true, given]``.
    priors : (n_classes,) float64
    """

    tasks: IntArray
    workers: IntArray
    labels: IntArray
    true_labels: IntArray
    confusion: FloatArray
    priors: FloatArray

    @property
    def n_tasks(self) -> int:
        """Number of items."""
        return int(self.true_labels.size)

    @property
    def n_workers(self) -> int:
        """Number of players."""
        return int(self.confusion.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return int(self.priors.size)


def make_crowd(
    rng: np.random.Generator,
    *,
    n_tasks: int,
    n_workers: int,
    n_classes: int,
    labels_per_item: int,
    accuracy: tuple[float, float] = (0.55, 0.95),
    priors: npt.ArrayLike | None = None,
    confusion: FloatArray | None = None,
) -> SyntheticCrowd:
    """Draw a synthetic crowd.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_tasks, n_workers, n_classes : int
    labels_per_item : int
        Distinct players per item; at most ``n_workers``.
    accuracy : (low, high)
        Per-player probability of the true class, drawn uniformly (ignored with ``confusion``).
    priors : (n_classes,) array-like, optional
        Class frequencies; uniform when omitted.
    confusion : (n_workers, n_classes, n_classes) array, optional
        Use these confusion matrices instead of drawing them.

    Returns
    -------
    SyntheticCrowd
    """
    if not 1 <= labels_per_item <= n_workers:
        raise ValueError("labels_per_item must lie in [1, n_workers]")
    class_priors = (
        np.full(n_classes, 1.0 / n_classes)
        if priors is None
        else np.asarray(priors, dtype=np.float64) / np.sum(priors)
    )
    if confusion is None:
        confusion = _draw_confusion(rng, n_workers, n_classes, accuracy)
    true_labels = rng.choice(n_classes, size=n_tasks, p=class_priors).astype(np.int64)
    # Distinct players per item: a random start plus strictly increasing offsets whose total
    # stays below n_workers, taken modulo n_workers.
    max_step = max(n_workers // labels_per_item, 1)
    steps = rng.integers(1, max_step + 1, size=(n_tasks, labels_per_item))
    steps[:, 0] = rng.integers(0, n_workers, size=n_tasks)
    workers = (np.cumsum(steps, axis=1) % n_workers).ravel().astype(np.int64)
    tasks = np.repeat(np.arange(n_tasks, dtype=np.int64), labels_per_item)
    labels = sample_answers(rng, confusion, workers, true_labels[tasks])
    return SyntheticCrowd(
        tasks=tasks,
        workers=workers,
        labels=labels,
        true_labels=true_labels,
        confusion=confusion,
        priors=class_priors,
    )


def sample_answers(
    rng: np.random.Generator, confusion: FloatArray, workers: IntArray, true_labels: IntArray
) -> IntArray:
    """Draw one answer per ``(worker, true label)`` pair from ``confusion[worker, true_label]``.

    Returns
    -------
    (n_answers,) int64
    """
    cdf = np.cumsum(confusion, axis=2)[workers, true_labels]  # (n, K)
    draws = rng.random(workers.size)[:, None]
    answers = (draws >= cdf).sum(axis=1)
    return np.minimum(answers, confusion.shape[2] - 1).astype(np.int64)


def _draw_confusion(
    rng: np.random.Generator, n_workers: int, n_classes: int, accuracy: tuple[float, float]
) -> FloatArray:
    """Confusion matrices with a uniform-random diagonal and Dirichlet(1) off-diagonal mass."""
    diag = rng.uniform(accuracy[0], accuracy[1], size=(n_workers, n_classes))
    off = rng.dirichlet(np.ones(n_classes - 1), size=(n_workers, n_classes))
    confusion = np.empty((n_workers, n_classes, n_classes))
    for c in range(n_classes):
        others = [k for k in range(n_classes) if k != c]
        confusion[:, c, c] = diag[:, c]
        confusion[:, c, others] = off[:, c, :] * (1.0 - diag[:, c : c + 1])
    return confusion
