"""Shared plumbing for the crowd aggregators: input checks, the design matrix, M- and E-steps.

Every aggregator in :mod:`ml.dawid_skene` and :mod:`ml.majority` works on the same three parallel
integer arrays (``tasks``, ``workers``, ``labels``, one entry per answer, 0-based codes) and returns
the same :class:`DawidSkeneResult`. The heavy lifting is two sparse products with one design matrix
``A`` of shape ``(n_tasks, n_workers * n_classes)`` that has a 1 at ``(task, worker * K + label)``
for every answer:

* E-step: ``A @ log_confusion_by_label`` sums, for every task and candidate true class, the log
  probability of every answer it received;
* M-step: ``A.T @ posteriors`` accumulates the expected ``(worker, given label, true class)`` counts.

Both are single passes over the answers, so one EM iteration costs O(n_answers * n_classes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Types accepted for gold labels: ``{task: class}`` or an int array of length n_tasks, -1 = unknown.
GoldLike = Mapping[int, int] | npt.ArrayLike | None

#: Floor used where a probability must stay strictly positive before a log (no smoothing case).
PROB_FLOOR = 1e-12


@dataclass(frozen=True, eq=False)
class DawidSkeneResult:
    """Consensus and player models from one aggregation run.

    All arrays are read-only.

    Attributes
    ----------
    posteriors : (n_tasks, n_classes) float64
        Probability of each true class per task; rows sum to 1. Clamped (gold) tasks are one-hot.
        Tasks without any answer get the class priors (or the uniform distribution for majority vote).
    labels : (n_tasks,) int64
        ``argmax`` of ``posteriors``; ties go to the lowest class code.
    confidence : (n_tasks,) float64
        ``max`` of ``posteriors``.
    confusion : (n_workers, n_classes, n_classes) float64
        ``confusion[w, c, l]`` = P(worker ``w`` answers ``l`` | true class ``c``); rows sum to 1.
        Workers without answers have rows equal to the smoothing prior (uniform by default).
    priors : (n_classes,) float64
        Class prior probabilities.
    n_iter : int
        E-steps evaluated: plain EM steps plus SQUAREM jumps (0 for majority vote).
    log_likelihood : list of float
        The objective after each iteration: log-likelihood of the answers (and of the gold classes)
        plus the log of the Dirichlet smoothing prior. EM never decreases it.
    confusion_counts : (n_workers, n_classes, n_classes) float64
        Expected answer counts ``sum(posterior[task, c])`` per ``(worker, c, l)`` before smoothing:
        the sufficient statistics behind ``confusion`` (row sums = expected answers per true class).
    converged : bool
        Whether the tolerance was reached before ``max_iter`` (True for majority vote).
    method : str
        ``"dawid-skene"``, ``"one-coin"`` or ``"majority"``.
    """

    posteriors: FloatArray
    labels: IntArray
    confidence: FloatArray
    confusion: FloatArray
    priors: FloatArray
    n_iter: int
    log_likelihood: list[float]
    confusion_counts: FloatArray
    converged: bool
    method: str

    def __post_init__(self) -> None:
        for name in (
            "posteriors",
            "labels",
            "confidence",
            "confusion",
            "priors",
            "confusion_counts",
        ):
            array = getattr(self, name)
            if array.flags.writeable:
                array.setflags(write=False)


@dataclass(frozen=True, eq=False)
class CrowdData:
    """Validated answers plus the sparse design matrix shared by all iterations.

    Attributes
    ----------
    tasks, workers, labels : (n_answers,) int64
        The answers.
    n_tasks, n_workers, n_classes : int
        Sizes; codes are ``0 <= code < size``.
    design : scipy.sparse.csr_matrix, shape (n_tasks, n_workers * n_classes)
        Answer counts per task and ``worker * n_classes + label`` column.
    gold : (n_tasks,) int64
        Clamped class per task, -1 where unknown.
    answered : (n_tasks,) bool
        Tasks with at least one answer or a gold class: the ones that inform the class priors.
    """

    tasks: IntArray
    workers: IntArray
    labels: IntArray
    n_tasks: int
    n_workers: int
    n_classes: int
    design: sp.csr_matrix
    gold: IntArray
    answered: BoolArray


def as_codes(values: npt.ArrayLike, size: int, name: str) -> IntArray:
    """Return ``values`` as a 1-D int64 array, checking ``0 <= value < size``.

    Raises
    ------
    ValueError
        On a wrong shape, a non-integer dtype or a code out of range.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer codes, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= size:
        raise ValueError(f"{name} codes must lie in [0, {size}), found [{low}, {high}]")
    return array


def gold_array(gold: GoldLike, n_tasks: int, n_classes: int) -> IntArray:
    """Normalise gold labels to an int64 array of length ``n_tasks`` (-1 = unknown).

    Parameters
    ----------
    gold : mapping {task: class}, array-like of shape (n_tasks,), or None
        Known true classes (gold images, clinician decisions).
    n_tasks, n_classes : int
        Sizes used for range checks.

    Returns
    -------
    (n_tasks,) int64
    """
    out = np.full(n_tasks, -1, dtype=np.int64)
    if gold is None:
        return out
    if isinstance(gold, Mapping):
        if gold:
            keys = as_codes(np.fromiter(gold.keys(), dtype=np.int64), n_tasks, "gold tasks")
            values = as_codes(np.fromiter(gold.values(), dtype=np.int64), n_classes, "gold labels")
            out[keys] = values
        return out
    array = np.asarray(gold)
    if array.shape != (n_tasks,):
        raise ValueError(f"gold array must have shape ({n_tasks},), got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"gold array must hold integer codes, got dtype {array.dtype}")
    known = array >= 0
    as_codes(array[known], n_classes, "gold labels")
    out[known] = array[known]
    return out


def prepare(
    tasks: npt.ArrayLike,
    workers: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    n_tasks: int,
    n_workers: int,
    n_classes: int,
    gold: GoldLike = None,
) -> CrowdData:
    """Validate the answers and build the design matrices.

    Raises
    ------
    ValueError
        On inconsistent lengths, codes out of range, or fewer than two classes.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if n_tasks < 0 or n_workers < 0:
        raise ValueError("n_tasks and n_workers must be non-negative")
    task_codes = as_codes(tasks, n_tasks, "tasks")
    worker_codes = as_codes(workers, n_workers, "workers")
    label_codes = as_codes(labels, n_classes, "labels")
    if not task_codes.size == worker_codes.size == label_codes.size:
        raise ValueError(
            "tasks, workers and labels must have equal lengths, got "
            f"{task_codes.size}, {worker_codes.size}, {label_codes.size}"
        )
    design = build_design(task_codes, worker_codes, label_codes, n_tasks, n_workers, n_classes)
    gold_codes = gold_array(gold, n_tasks, n_classes)
    answered = np.bincount(task_codes, minlength=n_tasks) > 0
    answered |= gold_codes >= 0
    return CrowdData(
        tasks=task_codes,
        workers=worker_codes,
        labels=label_codes,
        n_tasks=n_tasks,
        n_workers=n_workers,
        n_classes=n_classes,
        design=design,
        gold=gold_codes,
        answered=answered,
    )


def build_design(
    tasks: IntArray,
    workers: IntArray,
    labels: IntArray,
    n_tasks: int,
    n_workers: int,
    n_classes: int,
) -> sp.csr_matrix:
    """Sparse ``(n_tasks, n_workers * n_classes)`` answer-count matrix (duplicates are summed)."""
    columns = workers * n_classes + labels
    ones = np.ones(tasks.size, dtype=np.float64)
    return sp.csr_matrix(
        (ones, (tasks, columns)), shape=(n_tasks, n_workers * n_classes), dtype=np.float64
    )


def vote_counts(data: CrowdData) -> FloatArray:
    """Answers per task and class, shape ``(n_tasks, n_classes)``."""
    flat = np.bincount(
        data.tasks * data.n_classes + data.labels, minlength=data.n_tasks * data.n_classes
    )
    return flat.reshape(data.n_tasks, data.n_classes).astype(np.float64)


def soft_majority(data: CrowdData) -> FloatArray:
    """Vote shares per task, gold clamped; tasks without answers get the uniform distribution.

    Returns
    -------
    (n_tasks, n_classes) float64
    """
    votes = vote_counts(data)
    totals = votes.sum(axis=1, keepdims=True)
    shares = np.divide(
        votes,
        totals,
        out=np.full_like(votes, 1.0 / data.n_classes),
        where=totals > 0,
    )
    return clamp_gold(shares, data.gold)


def clamp_gold(posteriors: FloatArray, gold: IntArray) -> FloatArray:
    """Overwrite the rows of known tasks with one-hot vectors (in place); return ``posteriors``."""
    known = np.flatnonzero(gold >= 0)
    if known.size:
        posteriors[known] = 0.0
        posteriors[known, gold[known]] = 1.0
    return posteriors


def expected_counts(data: CrowdData, posteriors: FloatArray) -> FloatArray:
    """Expected ``(worker, true class, given label)`` counts from task posteriors.

    Parameters
    ----------
    posteriors : (n_tasks, n_classes)

    Returns
    -------
    (n_workers, n_classes, n_classes) float64
        ``counts[w, c, l] = sum of posteriors[t, c] over answers (t, w, l)``.
    """
    k = data.n_classes
    # design.T is a CSC view: scattering into the small (n_workers * K, K) output stays in cache,
    # about 4x faster than a CSR copy of the transpose gathering from the large posteriors.
    by_label = np.asarray(data.design.T @ posteriors)  # (n_workers * K, K): rows (w, l), cols c
    return np.ascontiguousarray(by_label.reshape(data.n_workers, k, k).transpose(0, 2, 1))


def normalise_rows(counts: FloatArray, pseudo: FloatArray | float) -> FloatArray:
    """``(counts + pseudo)`` normalised along the last axis; all-zero rows become uniform."""
    smoothed = counts + pseudo
    totals = smoothed.sum(axis=-1, keepdims=True)
    k = counts.shape[-1]
    result = np.divide(smoothed, totals, out=np.full_like(smoothed, 1.0 / k), where=totals > 0)
    return result


def class_priors(data: CrowdData, posteriors: FloatArray, pseudo: float) -> FloatArray:
    """Class priors from the posteriors of tasks with answers or gold, plus ``pseudo`` per class."""
    # einsum's own loop, not a BLAS gemv: OpenBLAS would spin up threads for this tiny product,
    # which costs more than it saves and hurts badly on a shared machine.
    counts = np.einsum("tk,t->k", posteriors, data.answered.astype(np.float64))
    return normalise_rows(counts, pseudo)


def e_step(
    data: CrowdData, log_confusion: FloatArray, log_priors: FloatArray
) -> tuple[FloatArray, float]:
    """Posteriors of every task and the log-likelihood of the answers (and gold classes).

    Parameters
    ----------
    log_confusion : (n_workers, n_classes, n_classes)
        ``log P(answer l | true c)`` per worker, indexed ``[w, c, l]``.
    log_priors : (n_classes,)

    Returns
    -------
    posteriors : (n_tasks, n_classes) float64, Fortran order
        Gold tasks clamped to one-hot.
    log_likelihood : float
        ``sum_t log sum_c prior_c prod_answers P(l | c)`` over unknown tasks plus
        ``sum_t log (prior_g prod P(l | g))`` over gold tasks.
    """
    k = data.n_classes
    by_label = log_confusion.transpose(0, 2, 1).reshape(data.n_workers * k, k)
    # Work class-major, (K, n_tasks): reductions over K become element-wise passes over
    # contiguous rows, several times faster than row-wise reductions of an (n_tasks, K) array.
    joint = np.ascontiguousarray(np.asarray(data.design @ by_label).T)
    joint += log_priors[:, None]
    known = np.flatnonzero(data.gold >= 0)
    gold_joint = joint[data.gold[known], known]  # log(prior_g * prod P(l | g)) of clamped tasks
    peak = np.maximum.reduce(joint, axis=0)
    joint -= peak
    np.exp(joint, out=joint)
    norm = np.add.reduce(joint, axis=0)
    joint /= norm
    log_norm = np.log(norm)
    log_norm += peak
    posteriors = joint.T
    if known.size:
        log_norm[known] = gold_joint
        clamp_gold(posteriors, data.gold)
    return posteriors, float(log_norm[data.answered].sum())


def finish(
    *,
    posteriors: FloatArray,
    confusion: FloatArray,
    priors: FloatArray,
    counts: FloatArray,
    n_iter: int,
    log_likelihood: list[float],
    converged: bool,
    method: str,
) -> DawidSkeneResult:
    """Package a result: labels are the first argmax, confidence the max posterior."""
    posteriors = np.ascontiguousarray(posteriors)
    labels = np.argmax(posteriors, axis=1).astype(np.int64)
    confidence = posteriors[np.arange(posteriors.shape[0]), labels]
    return DawidSkeneResult(
        posteriors=posteriors,
        labels=labels,
        confidence=confidence,
        confusion=confusion,
        priors=priors,
        n_iter=n_iter,
        log_likelihood=log_likelihood,
        confusion_counts=counts,
        converged=converged,
        method=method,
    )
