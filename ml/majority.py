"""Majority vote, returning the same result type as Dawid–Skene.

The posteriors are the vote shares (a soft majority vote); the label is the most voted class (ties to
the lowest code); the confusion matrices are estimated from the vote shares exactly as one Dawid–Skene
M-step would, so player skills can be read off a majority-vote run too.
"""

from __future__ import annotations

import numpy.typing as npt

from ml._crowd import (
    DawidSkeneResult,
    GoldLike,
    class_priors,
    expected_counts,
    finish,
    normalise_rows,
    prepare,
    soft_majority,
)
from ml.dawid_skene import (
    DEFAULT_PRIOR_SMOOTHING,
    DEFAULT_SMOOTHING,
    _confusion_pseudocounts,
    fit_one_coin,
)

__all__ = ["fit_one_coin", "majority_vote"]


def majority_vote(
    tasks: npt.ArrayLike,
    workers: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    n_tasks: int,
    n_workers: int,
    n_classes: int,
    gold: GoldLike = None,
    smoothing: float | npt.ArrayLike = DEFAULT_SMOOTHING,
    prior_smoothing: float = DEFAULT_PRIOR_SMOOTHING,
) -> DawidSkeneResult:
    """Aggregate answers by (soft) majority vote.

    Parameters
    ----------
    tasks, workers, labels : (n_answers,) int
        Answers as 0-based codes (see :func:`ml.dawid_skene.fit_dawid_skene`).
    n_tasks, n_workers, n_classes : int
        Sizes.
    gold : {task: class} mapping, (n_tasks,) int array with -1 for unknown, or None
        Clamped tasks get a one-hot posterior.
    smoothing, prior_smoothing : see :func:`ml.dawid_skene.fit_dawid_skene`
        Used for the confusion matrices and priors estimated from the vote.

    Returns
    -------
    DawidSkeneResult
        ``posteriors`` are vote shares (uniform for tasks without answers), ``n_iter == 0``,
        ``log_likelihood == []``, ``method == "majority"``.
    """
    data = prepare(
        tasks,
        workers,
        labels,
        n_tasks=n_tasks,
        n_workers=n_workers,
        n_classes=n_classes,
        gold=gold,
    )
    posteriors = soft_majority(data)
    counts = expected_counts(data, posteriors)
    return finish(
        posteriors=posteriors,
        confusion=normalise_rows(counts, _confusion_pseudocounts(smoothing, n_classes)),
        priors=class_priors(data, posteriors, prior_smoothing),
        counts=counts,
        n_iter=0,
        log_likelihood=[],
        converged=True,
        method="majority",
    )
