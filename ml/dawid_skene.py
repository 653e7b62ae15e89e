"""Dawid–Skene EM for class labels from many noisy players (full and one-coin).

Dawid & Skene (1979), "Maximum likelihood estimation of observer error-rates using the EM
algorithm", JRSS C 28(1). Each player ``w`` has a confusion matrix ``pi[w, c, l]`` = P(answer ``l``
| true class ``c``); each task a latent true class with prior ``p[c]``. EM alternates

* M-step: ``pi[w, c, :]`` ∝ expected counts of ``w``'s answers on tasks of true class ``c``
  plus a Dirichlet pseudocount (``smoothing``), ``p`` ∝ summed posteriors plus ``prior_smoothing``;
* E-step: ``log P(c | answers) = log p[c] + sum_answers log pi[w, c, l] - log Z`` in log space.

The pseudocounts make this MAP-EM: a player with one answer gets a mildly informative matrix instead
of a degenerate 0/1 one, and a player who never met a class keeps the prior row (uniform).
Gold tasks (gold images, clinician decisions) have their posterior clamped to one-hot in every
E-step, so they inform the confusion matrices and the priors without being re-estimated.

The one-coin variant ties each confusion matrix to one accuracy ``s_w`` (diagonal ``s_w``, the rest
``(1 - s_w) / (K - 1)``): far fewer parameters for very sparse data.

The EM is accelerated with SQUAREM (see ``_run_em``) and stops when no posterior moves by ``tol``
between two plain EM steps. Everything is deterministic: the initialisation is the (soft) majority
vote, there is no random restart, and ties between classes go to the lowest code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ml._crowd import (
    PROB_FLOOR,
    CrowdData,
    DawidSkeneResult,
    FloatArray,
    GoldLike,
    class_priors,
    e_step,
    expected_counts,
    finish,
    normalise_rows,
    prepare,
    soft_majority,
)

__all__ = [
    "DEFAULT_PRIOR_SMOOTHING",
    "DEFAULT_SMOOTHING",
    "DawidSkeneResult",
    "fit_dawid_skene",
    "fit_one_coin",
]

logger = logging.getLogger(__name__)

#: Dirichlet pseudocount added to every cell of every confusion-matrix row.
DEFAULT_SMOOTHING = 0.01
#: Pseudocount added to every class when estimating the class priors.
DEFAULT_PRIOR_SMOOTHING = 1.0


def fit_dawid_skene(
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
) -> DawidSkeneResult:
    """Fit the Dawid–Skene model (one full confusion matrix per player) by MAP-EM.

    Parameters
    ----------
    tasks, workers, labels : (n_answers,) int
        One entry per answer: task code, player code, given class code (all 0-based).
    n_tasks, n_workers, n_classes : int
        Sizes; codes must lie in ``[0, size)``. Tasks or players without answers are allowed.
    gold : {task: class} mapping, (n_tasks,) int array with -1 for unknown, or None
        Known true classes; their posteriors are clamped to one-hot.
    tol : float
        Stop when no posterior probability changes by ``tol`` or more between two E-steps.
    max_iter : int
        Iteration cap (at least 1).
    smoothing : float or (n_classes, n_classes) array
        Dirichlet pseudocount per confusion cell ``[c, l]`` (a matrix allows e.g. a diagonal prior).
    prior_smoothing : float
        Pseudocount per class for the class priors.

    Returns
    -------
    DawidSkeneResult
        ``method == "dawid-skene"``.
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
    pseudo = _confusion_pseudocounts(smoothing, n_classes)

    model = _Model(
        m_step=lambda posteriors: normalise_rows(expected_counts(data, posteriors), pseudo),
        log_prior_density=lambda confusion: float((pseudo * _safe_log(confusion)).sum()),
    )
    return _run_em(data, model, tol, max_iter, prior_smoothing, "dawid-skene")


def fit_one_coin(
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
    smoothing: float = DEFAULT_SMOOTHING,
    prior_smoothing: float = DEFAULT_PRIOR_SMOOTHING,
) -> DawidSkeneResult:
    """Fit the one-coin Dawid–Skene model: one accuracy per player.

    Each player's confusion matrix is ``s_w`` on the diagonal and ``(1 - s_w) / (K - 1)`` elsewhere;
    the M-step is ``s_w = (expected correct answers + a) / (answers + K a)`` with ``a = smoothing``
    (a Beta(1 + a, 1 + (K - 1) a) prior, so a player without answers sits at chance, ``1 / K``).

    Parameters and return value as :func:`fit_dawid_skene` (``smoothing`` is a scalar here);
    ``method == "one-coin"``.
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
    if smoothing < 0:
        raise ValueError("smoothing must be non-negative")
    k = n_classes
    answers = np.bincount(data.workers, minlength=n_workers).astype(np.float64)

    def m_step(posteriors: FloatArray) -> FloatArray:
        correct = np.bincount(
            data.workers, weights=posteriors[data.tasks, data.labels], minlength=n_workers
        )
        total = answers + k * smoothing
        accuracy = np.divide(
            correct + smoothing, total, out=np.full(n_workers, 1.0 / k), where=total > 0
        )
        return one_coin_confusion(accuracy, k)

    def log_prior_density(confusion: FloatArray) -> float:
        accuracy = confusion[:, 0, 0]
        return float(smoothing * (_safe_log(accuracy) + (k - 1) * _safe_log(1.0 - accuracy)).sum())

    model = _Model(m_step=m_step, log_prior_density=log_prior_density)
    return _run_em(data, model, tol, max_iter, prior_smoothing, "one-coin")


def one_coin_confusion(accuracy: FloatArray, n_classes: int) -> FloatArray:
    """Confusion matrices of one-coin players.

    Parameters
    ----------
    accuracy : (n_workers,)
        Probability of answering the true class.

    Returns
    -------
    (n_workers, n_classes, n_classes) float64
    """
    off = (1.0 - accuracy) / (n_classes - 1)
    confusion = np.repeat(off[:, None, None], n_classes, axis=1).repeat(n_classes, axis=2)
    diagonal = np.arange(n_classes)
    confusion[:, diagonal, diagonal] = accuracy[:, None]
    return confusion


def _run_em(
    data: CrowdData,
    model: _Model,
    tol: float,
    max_iter: int,
    prior_smoothing: float,
    method: str,
) -> DawidSkeneResult:
    """MAP-EM from the soft majority vote, accelerated with SQUAREM.

    SQUAREM (Varadhan & Roland 2008, Scand. J. Stat. 35(2)) extrapolates two EM steps
    ``theta0 -> theta1 -> theta2`` along ``theta0 - 2 a r + a^2 v`` (``r = theta1 - theta0``,
    ``v = theta2 - 2 theta1 + theta0``, ``a = -|r| / |v|``) and keeps the jump only if the objective
    does not drop below the plain EM step; otherwise it continues from ``theta2``. EM's linear
    convergence on a few borderline tasks is what dominates the run time, and the jump removes most
    of it. Convergence is always judged between two consecutive plain EM steps: no posterior moves
    by ``tol`` or more.
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    if tol < 0 or prior_smoothing < 0:
        raise ValueError("tol and prior_smoothing must be non-negative")

    def evaluate(theta: _Params) -> tuple[FloatArray, float]:
        log_priors = _safe_log(theta.priors)
        posteriors, log_lik = e_step(data, _safe_log(theta.confusion), log_priors)
        density = model.log_prior_density(theta.confusion) + prior_smoothing * log_priors.sum()
        return posteriors, log_lik + float(density)

    def maximise(posteriors: FloatArray) -> _Params:
        return _Params(model.m_step(posteriors), class_priors(data, posteriors, prior_smoothing))

    posteriors = soft_majority(data)
    theta0 = maximise(posteriors)
    previous: FloatArray | None = None  # posteriors one plain EM step before theta0's
    history: list[float] = []
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        start = theta0
        posteriors, objective = evaluate(start)
        n_iter += 1
        history.append(objective)
        if previous is not None and _max_change(posteriors, previous) < tol:
            converged = True
            break
        theta1 = maximise(posteriors)
        if n_iter == max_iter:
            break
        first = posteriors
        posteriors, objective = evaluate(theta1)
        n_iter += 1
        history.append(objective)
        if _max_change(posteriors, first) < tol:
            converged = True
            break
        theta2 = maximise(posteriors)
        previous, theta0 = posteriors, theta2
        jump = _extrapolate(start, theta1, theta2)
        if jump is None or n_iter == max_iter:
            continue
        jump_posteriors, jump_objective = evaluate(jump)
        n_iter += 1
        if jump_objective >= objective:
            history.append(jump_objective)
            posteriors, previous, theta0 = (
                jump_posteriors,
                jump_posteriors,
                maximise(jump_posteriors),
            )
    # A last M-step makes confusion/priors the maximisers for the returned posteriors and the
    # counts their sufficient statistics (what an incremental update continues from).
    final = maximise(posteriors)
    logger.debug("%s: %d EM steps, converged=%s", method, n_iter, converged)
    return finish(
        posteriors=posteriors,
        confusion=final.confusion,
        priors=final.priors,
        counts=expected_counts(data, posteriors),
        n_iter=n_iter,
        log_likelihood=history,
        converged=converged,
        method=method,
    )


@dataclass(frozen=True, eq=False)
class _Params:
    """Model parameters: confusion ``(n_workers, K, K)`` and priors ``(K,)``."""

    confusion: FloatArray
    priors: FloatArray


@dataclass(frozen=True, eq=False)
class _Model:
    """What distinguishes the full and the one-coin model inside the shared EM loop."""

    m_step: Callable[[FloatArray], FloatArray]  # posteriors -> confusion (n_workers, K, K)
    log_prior_density: Callable[[FloatArray], float]  # confusion -> log smoothing prior (+ const)


def _extrapolate(theta0: _Params, theta1: _Params, theta2: _Params) -> _Params | None:
    """SQUAREM-S3 jump from three successive EM iterates; None when it would be a plain step."""
    r_conf, r_prior = theta1.confusion - theta0.confusion, theta1.priors - theta0.priors
    v_conf = theta2.confusion - 2.0 * theta1.confusion + theta0.confusion
    v_prior = theta2.priors - 2.0 * theta1.priors + theta0.priors
    r_norm = float(np.sum(r_conf * r_conf) + np.sum(r_prior * r_prior))
    v_norm = float(np.sum(v_conf * v_conf) + np.sum(v_prior * v_prior))
    if v_norm <= 0.0 or r_norm <= 0.0:
        return None
    step = -np.sqrt(r_norm / v_norm)
    if step >= -1.0:  # a = -1 is exactly theta2: nothing to gain
        return None
    confusion = theta0.confusion - 2.0 * step * r_conf + step * step * v_conf
    priors = theta0.priors - 2.0 * step * r_prior + step * step * v_prior
    # Back onto the simplex: the jump may leave it where a probability is near zero.
    return _Params(
        normalise_rows(np.maximum(confusion, PROB_FLOOR), 0.0),
        normalise_rows(np.maximum(priors, PROB_FLOOR), 0.0),
    )


def _max_change(a: FloatArray, b: FloatArray) -> float:
    """Largest absolute difference between two posterior arrays (0 for empty ones)."""
    if not a.size:
        return 0.0
    diff = a - b
    np.abs(diff, out=diff)
    return float(diff.max())


def _confusion_pseudocounts(smoothing: float | npt.ArrayLike, n_classes: int) -> FloatArray:
    """Validate ``smoothing`` and return it as a ``(n_classes, n_classes)`` pseudocount matrix."""
    pseudo = np.asarray(smoothing, dtype=np.float64)
    if pseudo.ndim == 0:
        pseudo = np.full((n_classes, n_classes), float(pseudo))
    if pseudo.shape != (n_classes, n_classes):
        raise ValueError(
            f"smoothing must be a scalar or a ({n_classes}, {n_classes}) matrix, got {pseudo.shape}"
        )
    if (pseudo < 0).any() or not np.isfinite(pseudo).all():
        raise ValueError("smoothing pseudocounts must be finite and non-negative")
    return pseudo


def _safe_log(values: FloatArray) -> FloatArray:
    """Natural log with probabilities floored at 1e-300 (exact zeros come only without smoothing)."""
    return np.log(np.maximum(values, 1e-300))
