"""Player skill read off the fitted confusion matrices: accuracy, sensitivity, spammers, adversaries.

Nothing here is hand-set per player: every figure is a function of the model (confusion matrices,
class priors and the expected answer counts behind them). A player's weight in the consensus is the
model's own (the log-likelihood ratios of their confusion matrix); these helpers only describe it.

* Spammer score (Raykar & Yu 2012, "Eliminating spammers and ranking annotators for crowdsourced
  labeling tasks", JMLR 13): a spammer's answer does not depend on the true class, so all rows of the
  confusion matrix are equal (rank one). The score is the mean squared distance between rows,
  ``1 / (K (K - 1)) * sum_{c < c'} ||pi[c] - pi[c']||^2``: 0 for a spammer, 1 for a perfect (or a
  perfectly inverted) player; for two classes it is ``(sensitivity + specificity - 1)^2``.
* Mutual information ``I(true class; answer)`` in bits under the class priors: 0 exactly for
  rank-one (spammer) matrices; the information one answer carries.
* Adversarial: balanced accuracy (mean of the diagonal) below chance ``1 / K``. Any rank-one matrix
  has trace 1, i.e. balanced accuracy exactly ``1 / K``, so "below chance" means systematically
  answering a wrong class. The decision is a one-sided test under the Dirichlet posterior of each
  confusion row (the model's expected counts plus a uniform Dirichlet(1) prior), so a player with
  three answers is not called adversarial on noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from ml._crowd import BoolArray, DawidSkeneResult, FloatArray

__all__ = [
    "PlayerSkill",
    "accuracy",
    "adversarial_probability",
    "balanced_accuracy",
    "mutual_information",
    "player_skill",
    "sensitivity_specificity",
    "spammer_score",
]


@dataclass(frozen=True, eq=False)
class PlayerSkill:
    """Per-player skill figures derived from a fitted model.

    Attributes
    ----------
    accuracy : (n_workers,)
        P(answer = true class) under the class priors.
    balanced_accuracy : (n_workers,)
        Mean of the confusion diagonal; chance level is ``1 / n_classes``.
    sensitivity, specificity : (n_workers, n_classes)
        One-vs-rest per class (see :func:`sensitivity_specificity`).
    spammer_score : (n_workers,)
        Raykar & Yu score in [0, 1]; 0 = answers independent of the truth.
    information_bits : (n_workers,)
        Mutual information between true class and answer.
    n_answers : (n_workers,)
        Answers the estimate rests on.
    adversarial_probability : (n_workers,)
        Posterior probability that the balanced accuracy is below chance.
    adversarial : (n_workers,) bool
        ``adversarial_probability >= level``.
    """

    accuracy: FloatArray
    balanced_accuracy: FloatArray
    sensitivity: FloatArray
    specificity: FloatArray
    spammer_score: FloatArray
    information_bits: FloatArray
    n_answers: FloatArray
    adversarial_probability: FloatArray
    adversarial: BoolArray


def accuracy(confusion: FloatArray, priors: FloatArray) -> FloatArray:
    """Prior-weighted accuracy ``sum_c p[c] * pi[w, c, c]``.

    Parameters
    ----------
    confusion : (n_workers, K, K)
    priors : (K,)

    Returns
    -------
    (n_workers,)
    """
    return np.einsum("wcc,c->w", confusion, priors)


def balanced_accuracy(confusion: FloatArray) -> FloatArray:
    """Mean of each confusion diagonal, ``(n_workers,)``; ``1 / K`` for any spammer."""
    return np.einsum("wcc->w", confusion) / confusion.shape[1]


def sensitivity_specificity(
    confusion: FloatArray, priors: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """One-vs-rest sensitivity and specificity per player and class.

    ``sensitivity[w, c] = pi[w, c, c]``; ``specificity[w, c]`` = P(answer != c | true != c) with the
    true classes other than ``c`` weighted by the priors. For two classes, class 1 gives the usual
    sensitivity/specificity.

    Parameters
    ----------
    confusion : (n_workers, K, K)
    priors : (K,)

    Returns
    -------
    sensitivity, specificity : (n_workers, K)
    """
    sensitivity = np.einsum("wcc->wc", confusion).copy()
    # P(answer = c | true = c') weighted by p[c'] over c' != c.
    answered_c = np.einsum("wdc,d->wc", confusion, priors) - sensitivity * priors
    others = 1.0 - priors
    false_positive = np.divide(answered_c, others, out=np.zeros_like(answered_c), where=others > 0)
    return sensitivity, 1.0 - false_positive


def spammer_score(confusion: FloatArray) -> FloatArray:
    """Raykar & Yu spammer score: mean squared distance between confusion rows, ``(n_workers,)``."""
    k = confusion.shape[1]
    centred = confusion - confusion.mean(axis=1, keepdims=True)
    # sum_{c < c'} ||a_c - a_c'||^2 = K * sum_c ||a_c - mean||^2
    pairwise = k * np.einsum("wcl,wcl->w", centred, centred)
    return pairwise / (k * (k - 1))


def mutual_information(confusion: FloatArray, priors: FloatArray) -> FloatArray:
    """``I(true class; answer)`` in bits per player, ``(n_workers,)``."""
    joint = confusion * priors[None, :, None]  # (w, c, l)
    answer = joint.sum(axis=1, keepdims=True)  # (w, 1, l)
    ratio = np.divide(
        confusion, answer, out=np.ones_like(confusion), where=(answer > 0) & (confusion > 0)
    )
    return np.einsum("wcl,wcl->w", joint, np.log2(ratio))


def adversarial_probability(counts: FloatArray, pseudo: FloatArray | float = 1.0) -> FloatArray:
    """Posterior probability that a player's balanced accuracy is below ``1 / K``.

    Each confusion row has the Dirichlet posterior ``counts[w, c] + pseudo``; its diagonal entry is
    Beta-distributed with known mean and variance, and the balanced accuracy (mean of K independent
    diagonals) is approximated as normal.

    Parameters
    ----------
    counts : (n_workers, K, K)
        Expected answer counts (``DawidSkeneResult.confusion_counts``).
    pseudo : float or (K, K)
        Dirichlet prior of the rows for this test. The default, 1 (uniform over each row), asks
        for real evidence; the EM's own tiny smoothing pseudocounts would make three wrong answers
        look conclusive.

    Returns
    -------
    (n_workers,)
    """
    k = counts.shape[1]
    alpha = counts + pseudo
    row = alpha.sum(axis=2)  # (w, c)
    diag = np.einsum("wcc->wc", alpha)
    safe_row = np.where(row > 0, row, 1.0)
    mean = np.where(row > 0, diag / safe_row, 1.0 / k)
    var = np.where(row > 0, mean * (1.0 - mean) / (safe_row + 1.0), 0.0)
    ba_mean = mean.mean(axis=1)
    ba_sd = np.sqrt(var.sum(axis=1)) / k
    z = np.divide(1.0 / k - ba_mean, ba_sd, out=np.zeros_like(ba_mean), where=ba_sd > 0)
    return np.where(ba_sd > 0, ndtr(z), 0.0)


def player_skill(
    result: DawidSkeneResult,
    *,
    level: float = 0.99,
) -> PlayerSkill:
    """All skill figures of every player of a fit.

    Parameters
    ----------
    result : DawidSkeneResult
    level : float
        Posterior probability above which a player is reported adversarial (one-sided; with many
        players, a high level keeps chance-level spammers from being flagged by noise).

    Returns
    -------
    PlayerSkill
    """
    sensitivity, specificity = sensitivity_specificity(result.confusion, result.priors)
    probability = adversarial_probability(result.confusion_counts)
    return PlayerSkill(
        accuracy=accuracy(result.confusion, result.priors),
        balanced_accuracy=balanced_accuracy(result.confusion),
        sensitivity=sensitivity,
        specificity=specificity,
        spammer_score=spammer_score(result.confusion),
        information_bits=mutual_information(result.confusion, result.priors),
        n_answers=result.confusion_counts.sum(axis=(1, 2)),
        adversarial_probability=probability,
        adversarial=probability >= level,
    )
