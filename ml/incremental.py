"""Incremental Dawid–Skene: fold new answers in without a full refit.

The state keeps the sufficient statistics of the model: expected answer counts per
``(player, true class, given label)`` and expected class counts, i.e. the sums of the task posteriors
over the answers. When answers arrive for a few tasks, only those tasks are revisited
(Neal & Hinton 1998, "A view of the EM algorithm that justifies incremental, sparse, and other
variants"): their old contribution is subtracted from the statistics, their posteriors are recomputed
with the current confusion matrices and priors, and the new contribution is added back; this partial
E-step plus M-step is repeated ``sweeps`` times. Cost: O(answers of the touched tasks) plus one
O(n_answers) scan to find them, against O(n_answers * n_classes * iterations) for a refit.

Other tasks keep their posteriors although the confusion matrices of the players they share moved a
little; a periodic full refit (``refit_every`` answers, or :func:`refit`) removes that drift. The
drift is measured in ``bench/consensus_incremental.py`` and bounded in
``tests/ml/test_incremental.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from ml._crowd import (
    DawidSkeneResult,
    FloatArray,
    GoldLike,
    IntArray,
    as_codes,
    clamp_gold,
    finish,
    gold_array,
    normalise_rows,
)
from ml.dawid_skene import (
    DEFAULT_PRIOR_SMOOTHING,
    DEFAULT_SMOOTHING,
    _confusion_pseudocounts,
    fit_dawid_skene,
)

__all__ = ["ConsensusState", "add_answers", "refit", "start"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ConsensusState:
    """Answers, posteriors and sufficient statistics of an incrementally updated Dawid–Skene model.

    Attributes
    ----------
    tasks, workers, labels : (n_answers,) int64
        Every answer so far.
    gold : (n_tasks,) int64
        Clamped classes, -1 where unknown.
    posteriors : (n_tasks, n_classes) float64
    counts : (n_workers, n_classes, n_classes) float64
        ``sum(posteriors[t, c])`` over answers ``(t, w, l)``, indexed ``[w, c, l]``.
    class_counts : (n_classes,) float64
        ``sum(posteriors[t])`` over tasks with an answer or a gold class.
    pseudo : (n_classes, n_classes) float64
        Dirichlet pseudocounts of the confusion rows.
    prior_smoothing : float
    tol, max_iter : float, int
        Used by full refits.
    answers_since_refit : int
        Answers folded in incrementally since the last full fit.
    """

    tasks: IntArray
    workers: IntArray
    labels: IntArray
    gold: IntArray
    posteriors: FloatArray
    counts: FloatArray
    class_counts: FloatArray
    pseudo: FloatArray
    prior_smoothing: float
    tol: float
    max_iter: int
    answers_since_refit: int

    @property
    def n_tasks(self) -> int:
        """Number of tasks."""
        return int(self.posteriors.shape[0])

    @property
    def n_workers(self) -> int:
        """Number of players."""
        return int(self.counts.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return int(self.posteriors.shape[1])

    @property
    def confusion(self) -> FloatArray:
        """Current confusion matrices, ``(n_workers, n_classes, n_classes)``."""
        return normalise_rows(self.counts, self.pseudo)

    @property
    def priors(self) -> FloatArray:
        """Current class priors, ``(n_classes,)``."""
        return normalise_rows(self.class_counts, self.prior_smoothing)

    def result(self) -> DawidSkeneResult:
        """The state as a :class:`DawidSkeneResult` (``method == "dawid-skene-incremental"``)."""
        return finish(
            posteriors=self.posteriors.copy(),
            confusion=self.confusion,
            priors=self.priors,
            counts=self.counts.copy(),
            n_iter=0,
            log_likelihood=[],
            converged=True,
            method="dawid-skene-incremental",
        )


def start(
    tasks: npt.ArrayLike,
    workers: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    n_tasks: int,
    n_workers: int,
    n_classes: int,
    gold: GoldLike = None,
    tol: float = 1e-6,
    max_iter: int = 100,
    smoothing: float | npt.ArrayLike = DEFAULT_SMOOTHING,
    prior_smoothing: float = DEFAULT_PRIOR_SMOOTHING,
) -> ConsensusState:
    """Full Dawid–Skene fit, kept as a state that :func:`add_answers` can update.

    Parameters are those of :func:`ml.dawid_skene.fit_dawid_skene`.
    """
    gold_codes = gold_array(gold, n_tasks, n_classes)
    state = ConsensusState(
        tasks=as_codes(tasks, n_tasks, "tasks"),
        workers=as_codes(workers, n_workers, "workers"),
        labels=as_codes(labels, n_classes, "labels"),
        gold=gold_codes,
        posteriors=np.zeros((n_tasks, n_classes)),
        counts=np.zeros((n_workers, n_classes, n_classes)),
        class_counts=np.zeros(n_classes),
        pseudo=_confusion_pseudocounts(smoothing, n_classes),
        prior_smoothing=prior_smoothing,
        tol=tol,
        max_iter=max_iter,
        answers_since_refit=0,
    )
    return refit(state)


def refit(state: ConsensusState) -> ConsensusState:
    """Full Dawid–Skene fit on every answer of ``state`` (from the majority vote, deterministic)."""
    fit = fit_dawid_skene(
        state.tasks,
        state.workers,
        state.labels,
        n_tasks=state.n_tasks,
        n_workers=state.n_workers,
        n_classes=state.n_classes,
        gold=state.gold,
        tol=state.tol,
        max_iter=state.max_iter,
        smoothing=state.pseudo,
        prior_smoothing=state.prior_smoothing,
    )
    answered = np.bincount(state.tasks, minlength=state.n_tasks) > 0
    answered |= state.gold >= 0
    posteriors = np.array(fit.posteriors)
    return replace(
        state,
        posteriors=posteriors,
        counts=np.array(fit.confusion_counts),
        class_counts=posteriors.T @ answered.astype(np.float64),
        answers_since_refit=0,
    )


def add_answers(
    state: ConsensusState,
    tasks: npt.ArrayLike,
    workers: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    n_tasks: int | None = None,
    n_workers: int | None = None,
    gold: Mapping[int, int] | None = None,
    sweeps: int = 2,
    refit_every: int | None = None,
    revisit_player_tasks: bool = False,
) -> ConsensusState:
    """Fold new answers (and new gold classes) into ``state``.

    Parameters
    ----------
    state : ConsensusState
    tasks, workers, labels : (n_new,) int
        New answers as codes; tasks and players may be new if ``n_tasks``/``n_workers`` grow.
    n_tasks, n_workers : int, optional
        New sizes (never smaller than the current ones).
    gold : {task: class}, optional
        Newly clamped tasks (e.g. clinician decisions); they are revisited like touched tasks.
    sweeps : int
        Partial E-step + M-step rounds over the touched tasks (>= 1).
    refit_every : int, optional
        Run a full refit instead once this many answers have been folded in since the last one.
    revisit_player_tasks : bool
        Also revisit every task answered by a player of the new answers (their confusion matrices
        move, so those tasks' posteriors do too): more exact, more work.

    Returns
    -------
    ConsensusState
        A new state; ``state`` is left unchanged.
    """
    if sweeps < 1:
        raise ValueError("sweeps must be at least 1")
    state = _grow(state, n_tasks or state.n_tasks, n_workers or state.n_workers)
    new_tasks = as_codes(tasks, state.n_tasks, "tasks")
    new_workers = as_codes(workers, state.n_workers, "workers")
    new_labels = as_codes(labels, state.n_classes, "labels")
    if not new_tasks.size == new_workers.size == new_labels.size:
        raise ValueError("tasks, workers and labels must have equal lengths")
    new_gold = gold_array(gold or {}, state.n_tasks, state.n_classes)
    gold_codes = np.where(new_gold >= 0, new_gold, state.gold)
    touched = np.union1d(new_tasks, np.flatnonzero(new_gold >= 0))
    was_answered = (np.bincount(state.tasks, minlength=state.n_tasks) > 0) | (state.gold >= 0)

    state = replace(
        state,
        tasks=np.concatenate([state.tasks, new_tasks]),
        workers=np.concatenate([state.workers, new_workers]),
        labels=np.concatenate([state.labels, new_labels]),
        gold=gold_codes,
        answers_since_refit=state.answers_since_refit + int(new_tasks.size),
    )
    if refit_every is not None and state.answers_since_refit >= refit_every:
        logger.info("full refit after %d incremental answers", state.answers_since_refit)
        return refit(state)
    if touched.size == 0:
        return state

    if revisit_player_tasks and new_workers.size:
        by_new_player = np.isin(state.workers, np.unique(new_workers))
        touched = np.union1d(touched, state.tasks[by_new_player])
    in_touched = np.isin(state.tasks, touched)
    sub_tasks = state.tasks[in_touched]
    sub_workers = state.workers[in_touched]
    sub_labels = state.labels[in_touched]
    # Only the answers that were already counted carry an old contribution to remove.
    is_old = np.flatnonzero(in_touched) < state.tasks.size - new_tasks.size
    local = np.searchsorted(touched, sub_tasks)

    posteriors = state.posteriors.copy()
    counts = state.counts.copy()
    class_counts = state.class_counts.copy()
    old_weight = is_old.astype(np.float64)
    old_task_weight = was_answered[touched].astype(np.float64)
    for _ in range(sweeps):
        # Partial E-step with the current parameters (all statistics, touched tasks included) ...
        confusion = normalise_rows(counts, state.pseudo)
        priors = normalise_rows(class_counts, state.prior_smoothing)
        # ... then swap the touched tasks' old contribution for the new one (M-step).
        _accumulate(counts, sub_workers, sub_labels, posteriors[sub_tasks], -old_weight)
        class_counts -= posteriors[touched].T @ old_task_weight
        posteriors[touched] = _local_posteriors(
            confusion, priors, local, sub_workers, sub_labels, gold_codes[touched]
        )
        _accumulate(counts, sub_workers, sub_labels, posteriors[sub_tasks], np.ones(local.size))
        class_counts += posteriors[touched].sum(axis=0)
        # From the second sweep on, every answer and task of the touched set is counted.
        old_weight = np.ones(local.size)
        old_task_weight = np.ones(touched.size)
    return replace(state, posteriors=posteriors, counts=counts, class_counts=class_counts)


def _grow(state: ConsensusState, n_tasks: int, n_workers: int) -> ConsensusState:
    """Pad the state for new tasks (prior posteriors) and players (empty counts)."""
    if n_tasks < state.n_tasks or n_workers < state.n_workers:
        raise ValueError("n_tasks and n_workers can only grow")
    if n_tasks == state.n_tasks and n_workers == state.n_workers:
        return state
    k = state.n_classes
    extra_tasks = n_tasks - state.n_tasks
    return replace(
        state,
        posteriors=np.vstack([state.posteriors, np.tile(state.priors, (extra_tasks, 1))]),
        gold=np.concatenate([state.gold, np.full(extra_tasks, -1, dtype=np.int64)]),
        counts=np.concatenate([state.counts, np.zeros((n_workers - state.n_workers, k, k))]),
    )


def _accumulate(
    counts: FloatArray,
    workers: IntArray,
    labels: IntArray,
    task_posteriors: FloatArray,
    weights: FloatArray,
) -> None:
    """``counts[w, :, l] += weight * posterior`` for every answer (in place, duplicates summed)."""
    k = counts.shape[1]
    flat = (workers[:, None] * k + np.arange(k)[None, :]) * k + labels[:, None]  # (m, K)
    counts += np.bincount(
        flat.ravel(), weights=(task_posteriors * weights[:, None]).ravel(), minlength=counts.size
    ).reshape(counts.shape)


def _local_posteriors(
    confusion: FloatArray,
    priors: FloatArray,
    local: IntArray,
    workers: IntArray,
    labels: IntArray,
    gold: IntArray,
) -> FloatArray:
    """E-step for the touched tasks only.

    Parameters
    ----------
    local : (m,) int
        Index of each answer's task within the touched set (``0 <= local < len(gold)``).
    workers, labels : (m,) int
    gold : (n_touched,) int
        Clamped class per touched task, -1 where unknown.

    Returns
    -------
    (n_touched, n_classes) float64
    """
    log_joint = np.tile(np.log(np.maximum(priors, 1e-300)), (gold.size, 1))
    np.add.at(log_joint, local, np.log(np.maximum(confusion[workers, :, labels], 1e-300)))
    log_joint -= log_joint.max(axis=1, keepdims=True)
    posteriors = np.exp(log_joint)
    posteriors /= posteriors.sum(axis=1, keepdims=True)
    return clamp_gold(posteriors, gold)
