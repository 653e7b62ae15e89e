"""Acquisition functions: pure numpy functions on probability arrays (no torch).

Shapes: ``n`` images, ``K`` classes, ``T`` stochastic (MC-dropout) passes, ``d`` embedding size.
Every score is "higher = more worth a label". Entropies are in nats.

The combined priority (:func:`combined_priority`) is the one the platform stores per image:

.. math::

    q_i &\\propto \\text{crowd}_i \\cdot (\\text{model}_i / \\pi)^{\\beta}
        \\quad\\text{(crowd posterior with the model as extra evidence)} \\\\
    v_i &= w_g\\,\\frac{\\mathrm{ECG}(q_i, \\text{crowd}_i, C)}{1 - 1/K}
        + w_v\\,\\frac{\\mathrm{EIG}(q_i, C)}{\\log K} + w_b\\,\\frac{\\mathrm{BALD}_i}{\\log K}
        + w_c\\,\\frac{H(\\text{crowd}_i)}{\\log K} \\\\
    \\text{priority}_i &= v_i \\cdot \\text{rarity}(q_i; \\pi, \\alpha)

where ``ECG`` is the expected gain in the probability that the crowd's consensus label is right
after one more label from an (average) player with confusion matrix ``C``
(:func:`expected_consensus_gain`): the repeated-labelling value of Sheng, Provost & Ipeirotis
(2008), which weighs a first label for a new image against one more label for an image the crowd
already labelled, with the model telling where the crowd is likely wrong. ``EIG`` (expected
information gain, :func:`expected_information_gain`) breaks the ties of the myopic ``ECG``,
``BALD`` is the model's epistemic uncertainty (labels the model learns most from) and ``pi`` the
class frequencies. Images that reached
``max_labels_per_image`` get ``-inf``. A batch is then drawn by :func:`select_batch`: a share
``exploration`` uniformly at random, the rest greedily by priority with a cosine penalty on the
model's embeddings so one batch is not ten near-duplicates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_EPS = 1e-12


def _as_probs(probs: NDArray[np.floating], ndim: int = 2) -> FloatArray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"expected a {ndim}-d probability array, got shape {arr.shape}")
    return arr


def _xlogx(p: FloatArray) -> FloatArray:
    return np.where(p > 0, p * np.log(np.maximum(p, _EPS)), 0.0)


def entropy(probs: NDArray[np.floating]) -> FloatArray:
    """Shannon entropy of each row.

    Parameters
    ----------
    probs : (n, K) array
        Class probabilities, rows summing to one.

    Returns
    -------
    (n,) array
        ``-sum_k p_k log p_k`` in nats (0 for a one-hot row, ``log K`` for a uniform one).
    """
    p = _as_probs(probs)
    return np.asarray(-_xlogx(p).sum(axis=1), dtype=np.float64)


def margin(probs: NDArray[np.floating]) -> FloatArray:
    """Margin uncertainty ``1 - (p_top1 - p_top2)``.

    Parameters
    ----------
    probs : (n, K) array, K >= 2

    Returns
    -------
    (n,) array in [0, 1]
        1 when the two most likely classes tie, 0 for a one-hot row.
    """
    p = _as_probs(probs)
    if p.shape[1] < 2:
        raise ValueError("margin needs at least two classes")
    top2 = np.sort(p, axis=1)[:, -2:]
    return np.asarray(1.0 - (top2[:, 1] - top2[:, 0]), dtype=np.float64)


def bald(mc_probs: NDArray[np.floating]) -> FloatArray:
    """BALD: mutual information between the prediction and the model weights.

    Estimated from MC-dropout passes as ``H(mean_t p_t) - mean_t H(p_t)`` (Houlsby et al. 2011,
    Gal et al. 2017): high when the passes disagree, zero when they all say the same thing, however
    uncertain that thing is.

    Parameters
    ----------
    mc_probs : (T, n, K) array
        Per-pass class probabilities.

    Returns
    -------
    (n,) array, >= 0, in nats
    """
    p = _as_probs(mc_probs, ndim=3)
    mean_entropy = -_xlogx(p).sum(axis=2).mean(axis=0)
    value = entropy(p.mean(axis=0)) - mean_entropy
    return np.asarray(np.maximum(value, 0.0), dtype=np.float64)


def crowd_posterior_entropy(posteriors: NDArray[np.floating]) -> FloatArray:
    """Disagreement of the crowd: entropy of each image's consensus posterior.

    Parameters
    ----------
    posteriors : (n, K) array
        Consensus (e.g. Dawid–Skene) posteriors; an image with no label has the class prior.

    Returns
    -------
    (n,) array in nats
    """
    return entropy(posteriors)


def combine_evidence(
    crowd_posteriors: NDArray[np.floating],
    model_probs: NDArray[np.floating],
    class_priors: NDArray[np.floating],
    *,
    model_weight: float = 1.0,
) -> FloatArray:
    """Belief about each image's true class from the crowd and the model together.

    ``q ∝ crowd * (model / prior) ** model_weight``: the crowd posterior already contains the prior,
    so the model contributes only its likelihood ratio (a product of experts, tempered by
    ``model_weight``; 0 ignores the model). For an image with no label the crowd posterior is the
    prior, so ``q`` becomes the (tempered) model prediction.

    Parameters
    ----------
    crowd_posteriors : (n, K) array
    model_probs : (n, K) array
        Calibrated model probabilities.
    class_priors : (K,) array
        Class frequencies the crowd posterior was computed with.
    model_weight : float
        Exponent in [0, 1] on the model's likelihood ratio.

    Returns
    -------
    (n, K) array, rows summing to one
    """
    crowd = _as_probs(crowd_posteriors)
    model = _as_probs(model_probs)
    prior = np.asarray(class_priors, dtype=np.float64)
    if crowd.shape != model.shape or prior.shape != (crowd.shape[1],):
        raise ValueError("crowd (n, K), model (n, K) and priors (K,) must agree")
    log_q = np.log(np.maximum(crowd, _EPS)) + model_weight * (
        np.log(np.maximum(model, _EPS)) - np.log(np.maximum(prior, _EPS))
    )
    log_q -= log_q.max(axis=1, keepdims=True)
    q = np.exp(log_q)
    return np.asarray(q / q.sum(axis=1, keepdims=True), dtype=np.float64)


def _check_confusion(confusion: NDArray[np.floating], n_classes: int) -> FloatArray:
    c = np.asarray(confusion, dtype=np.float64)
    if c.shape != (n_classes, n_classes):
        raise ValueError(f"confusion must be ({n_classes}, {n_classes}), got {c.shape}")
    return c


def expected_error_reduction(
    beliefs: NDArray[np.floating], confusion: NDArray[np.floating]
) -> FloatArray:
    """Expected drop in the probability that the image's decided label is wrong after one label.

    With belief ``q`` about the true class ``z`` and a player whose confusion matrix is
    ``C[z, y] = P(label y | true z)``, the error now is ``1 - max_k q_k`` and the expected error
    after seeing the label is ``1 - sum_y max_k q_k C[k, y]``, hence
    ``EER = sum_y max_k q_k C[k, y] - max_k q_k`` (>= 0). It is myopic: one label that cannot flip
    the decision is worth 0 even if two could; :func:`expected_information_gain` is not.

    Parameters
    ----------
    beliefs : (n, K) array
        Current belief per image (crowd posterior, or :func:`combine_evidence`).
    confusion : (K, K) array
        Rows: true class, columns: given label; rows sum to one. The labelling player's matrix,
        or an average player's.

    Returns
    -------
    (n,) array in [0, 1]
    """
    q = _as_probs(beliefs)
    c = _check_confusion(confusion, q.shape[1])
    joint = q[:, :, None] * c[None, :, :]  # (n, K true, K label)
    value = joint.max(axis=1).sum(axis=1) - q.max(axis=1)
    return np.asarray(np.maximum(value, 0.0), dtype=np.float64)


def _decision_weights(posteriors: FloatArray) -> FloatArray:
    """(..., K) → (..., K): 1/m on each of the m classes tied for the maximum (random tie-break)."""
    top = posteriors.max(axis=-1, keepdims=True)
    tied = posteriors >= top * (1.0 - 1e-9)
    return np.asarray(tied / tied.sum(axis=-1, keepdims=True), dtype=np.float64)


def expected_consensus_gain(
    beliefs: NDArray[np.floating],
    crowd_posteriors: NDArray[np.floating],
    confusion: NDArray[np.floating],
) -> FloatArray:
    """Expected gain in the probability that the crowd's consensus label is right, from one label.

    The consensus decides ``argmax crowd`` (ties broken uniformly at random); the true class is
    believed to follow ``q`` (which may include the model's evidence, see
    :func:`combine_evidence`). After a label ``y`` from a player with confusion ``C`` the crowd
    posterior becomes ``crowd * C[:, y]`` (normalised). Hence

    ``gain = sum_y sum_z q_z C[z, y] D(crowd * C[:, y])_z - sum_z q_z D(crowd)_z``

    with ``D`` the tie-split decision weights. With ``q = crowd`` this is the expected reduction in
    posterior error (:func:`expected_error_reduction`, up to ties). A first label for an image
    nobody labelled (crowd = prior, a tie for balanced classes) is worth about the player's
    accuracy minus ``1/K``; one more label for an image where the crowd and the model disagree is
    worth more than one for an image they agree on. Myopic: negative values are clipped to 0.

    Parameters
    ----------
    beliefs : (n, K) array
        ``q``: belief about the true class.
    crowd_posteriors : (n, K) array
        The consensus posterior the decision is made from.
    confusion : (K, K) array
        Rows: true class, columns: given label.

    Returns
    -------
    (n,) array in [0, 1]
    """
    q = _as_probs(beliefs)
    crowd = _as_probs(crowd_posteriors)
    c = _check_confusion(confusion, q.shape[1])
    if crowd.shape != q.shape:
        raise ValueError("beliefs and crowd_posteriors must have the same shape")
    now = (q * _decision_weights(crowd)).sum(axis=1)
    updated = crowd[:, None, :] * c.T[None, :, :]  # (n, y, z)
    decision = _decision_weights(updated)  # (n, y, z)
    joint = q[:, None, :] * c.T[None, :, :]  # (n, y, z): P(z, y)
    after = (joint * decision).sum(axis=(1, 2))
    return np.asarray(np.maximum(after - now, 0.0), dtype=np.float64)


def expected_information_gain(
    beliefs: NDArray[np.floating], confusion: NDArray[np.floating]
) -> FloatArray:
    """Mutual information between one more label and the true class.

    ``I(Z; Y) = H(sum_k q_k C[k, :]) - sum_k q_k H(C[k, :])``: the expected entropy reduction of
    the belief about the true class. A first label for a new image (broad ``q``) is worth more than
    one more for an image the crowd already agrees on, and a spammer (identical rows of ``C``) is
    worth exactly 0 — the repeated-labelling trade-off of Sheng, Provost & Ipeirotis (2008).

    Parameters
    ----------
    beliefs : (n, K) array
    confusion : (K, K) array
        Rows: true class, columns: given label.

    Returns
    -------
    (n,) array, >= 0, in nats
    """
    q = _as_probs(beliefs)
    c = _check_confusion(confusion, q.shape[1])
    label_probs = q @ c  # (n, K labels)
    row_entropy = -_xlogx(c).sum(axis=1)  # (K,)
    value = entropy(label_probs) - q @ row_entropy
    return np.asarray(np.maximum(value, 0.0), dtype=np.float64)


def rarity_boost(
    beliefs: NDArray[np.floating], class_frequencies: NDArray[np.floating], *, alpha: float
) -> FloatArray:
    """Multiplier favouring images likely to belong to rare classes.

    ``boost_i = sum_k q_ik (K f_k) ** -alpha``: 1 everywhere for balanced classes or
    ``alpha = 0``; with 2% melanoma (``K = 2``, ``alpha = 0.5``) an image believed melanoma gets
    ``0.04 ** -0.5 = 5``.

    Parameters
    ----------
    beliefs : (n, K) array
    class_frequencies : (K,) array
        Positive class shares (e.g. consensus label counts + 1, normalised).
    alpha : float
        Strength, >= 0.

    Returns
    -------
    (n,) array, > 0
    """
    q = _as_probs(beliefs)
    f = np.asarray(class_frequencies, dtype=np.float64)
    if f.shape != (q.shape[1],) or np.any(f <= 0):
        raise ValueError("class_frequencies must be (K,) and positive")
    f = f / f.sum()
    weights = (q.shape[1] * f) ** (-alpha)
    return np.asarray(q @ weights, dtype=np.float64)


def _unit_rows(embeddings: NDArray[np.floating]) -> FloatArray:
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    return np.asarray(e / np.maximum(norms, _EPS), dtype=np.float64)


def greedy_k_center(
    embeddings: NDArray[np.floating],
    k: int,
    *,
    candidates: NDArray[np.integer] | None = None,
    already_selected: NDArray[np.integer] | None = None,
) -> IntArray:
    """Farthest-first traversal (greedy k-center, Sener & Savarese 2018) in Euclidean space.

    Parameters
    ----------
    embeddings : (n, d) array
    k : int
        How many to pick.
    candidates : (m,) int array, optional
        Indices allowed to be picked (default: all).
    already_selected : (s,) int array, optional
        Centres that already exist (e.g. labelled images). When empty, the first pick is the
        candidate farthest from the candidates' mean.

    Returns
    -------
    (min(k, m),) int array
        Picked indices in pick order; ties go to the lowest index.
    """
    e = np.asarray(embeddings, dtype=np.float64)
    cand = np.arange(len(e)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    centres = (
        np.zeros(0, dtype=np.int64)
        if already_selected is None
        else np.asarray(already_selected, dtype=np.int64)
    )
    picked: list[int] = []
    available = np.ones(len(cand), dtype=bool)
    k = min(k, len(cand))
    if len(centres):
        dist = np.min(np.linalg.norm(e[cand, None, :] - e[None, centres, :], axis=2), axis=1)
    elif k:
        first = int(np.argmax(np.linalg.norm(e[cand] - e[cand].mean(axis=0), axis=1)))
        picked.append(int(cand[first]))
        available[first] = False
        dist = np.linalg.norm(e[cand] - e[cand[first]], axis=1)
    while len(picked) < k:
        j = int(np.argmax(np.where(available, dist, -np.inf)))
        picked.append(int(cand[j]))
        available[j] = False
        dist = np.minimum(dist, np.linalg.norm(e[cand] - e[cand[j]], axis=1))
    return np.asarray(picked, dtype=np.int64)


def diverse_top_k(
    scores: NDArray[np.floating],
    embeddings: NDArray[np.floating] | None,
    k: int,
    *,
    penalty: float,
) -> IntArray:
    """Greedy top-k by score with a cosine-similarity penalty between picks.

    After each pick the adjusted score of every other image becomes
    ``score_i * (1 - penalty * max(0, max_j cos(e_i, e_j)))`` over the picks ``j`` so far, so a
    near-duplicate of a picked image (cosine ~1) is worth almost nothing with ``penalty = 1``.
    Images with a score of ``-inf`` are never picked.

    Parameters
    ----------
    scores : (n,) array
        Non-negative priorities (or ``-inf`` for excluded images).
    embeddings : (n, d) array or None
        Model features; ``None`` or ``penalty = 0`` gives plain top-k.
    k : int
    penalty : float in [0, 1]

    Returns
    -------
    (<= k,) int array
        Indices in pick order; ties go to the lowest index.
    """
    s = np.asarray(scores, dtype=np.float64)
    eligible = np.isfinite(s)
    k = min(k, int(eligible.sum()))
    if embeddings is None or penalty == 0.0:
        order = np.argsort(-np.where(eligible, s, -np.inf), kind="stable")
        return np.asarray(order[:k], dtype=np.int64)
    u = _unit_rows(embeddings)
    max_sim = np.zeros(len(s))
    available = eligible.copy()
    picked: list[int] = []
    for _ in range(k):
        factor = 1.0 - penalty * np.maximum(max_sim, 0.0)
        adjusted = np.full(len(s), -np.inf)
        adjusted[available] = s[available] * factor[available]
        j = int(np.argmax(adjusted))
        picked.append(j)
        available[j] = False
        max_sim = np.maximum(max_sim, u @ u[j])
    return np.asarray(picked, dtype=np.int64)


def select_batch(
    priority: NDArray[np.floating],
    k: int,
    *,
    rng: np.random.Generator,
    exploration: float = 0.0,
    embeddings: NDArray[np.floating] | None = None,
    diversity: float = 0.0,
) -> IntArray:
    """Pick a batch: a share ``exploration`` at random, the rest by diverse top-k.

    Parameters
    ----------
    priority : (n,) array
        Scores; ``-inf`` marks images that may not be picked.
    k : int
        Batch size.
    rng : numpy Generator
        Source of the random exploration picks.
    exploration : float in [0, 1]
        Share of the batch drawn uniformly from the eligible images that were not picked by
        priority (rounded to the nearest integer).
    embeddings : (n, d) array, optional
    diversity : float in [0, 1]
        ``penalty`` of :func:`diverse_top_k`.

    Returns
    -------
    (<= k,) int array of distinct indices: priority picks first, then exploration picks.
    """
    p = np.asarray(priority, dtype=np.float64)
    eligible = np.flatnonzero(np.isfinite(p))
    k = min(k, len(eligible))
    n_random = int(round(exploration * k))
    chosen = diverse_top_k(p, embeddings, k - n_random, penalty=diversity)
    rest = np.setdiff1d(eligible, chosen)
    extra = rng.choice(rest, size=min(n_random, len(rest)), replace=False)
    return np.concatenate([chosen, np.sort(extra).astype(np.int64)])


@dataclass(frozen=True)
class PriorityConfig:
    """Weights of the combined priority (see the module docstring); one per dataset.

    Attributes
    ----------
    gain_weight : weight of the expected consensus gain of one more label (``w_g``).
    value_weight : weight of the expected information gain of one more label (``w_v``).
    bald_weight : weight of the model's epistemic uncertainty (``w_b``).
    crowd_weight : weight of the crowd posterior entropy (``w_c``).
    model_weight : exponent ``beta`` on the model's evidence in the belief ``q``.
    rarity_alpha : strength of :func:`rarity_boost` (0 = off).
    diversity : cosine penalty of :func:`diverse_top_k` (0 = off).
    exploration : share of each batch chosen uniformly at random.
    max_labels_per_image : an image with this many labels is not selected again.
    """

    gain_weight: float = 1.0
    value_weight: float = 0.1
    bald_weight: float = 0.1
    crowd_weight: float = 0.0
    model_weight: float = 0.7
    rarity_alpha: float = 0.0
    diversity: float = 0.3
    exploration: float = 0.1
    max_labels_per_image: int = 7


#: Per-dataset presets; an unknown dataset gets ``PriorityConfig()``.
PRIORITY_PRESETS: dict[str, PriorityConfig] = {
    "pneumoniamnist": PriorityConfig(),
    "chest_xray_kermany_subset": PriorityConfig(),
    # 7 unbalanced classes: favour rare lesions a little.
    "ham10000_subset": PriorityConfig(rarity_alpha=0.3),
    # ISIC 2020 has ~2% melanoma: a strong rarity boost.
    "isic2020": PriorityConfig(rarity_alpha=0.5),
}


def priority_config_for(dataset: str) -> PriorityConfig:
    """The preset for ``dataset`` (a folder name under ``data/images``), or the default."""
    return PRIORITY_PRESETS.get(dataset, PriorityConfig())


def combined_priority(
    config: PriorityConfig,
    *,
    crowd_posteriors: NDArray[np.floating],
    class_priors: NDArray[np.floating],
    model_probs: NDArray[np.floating],
    mc_probs: NDArray[np.floating] | None,
    n_labels: NDArray[np.integer],
    confusion: NDArray[np.floating],
    class_frequencies: NDArray[np.floating] | None = None,
) -> FloatArray:
    """The platform's acquisition score per image (formula in the module docstring).

    Parameters
    ----------
    config : PriorityConfig
    crowd_posteriors : (n, K) array
        Consensus posteriors (the class prior for images with no label).
    class_priors : (K,) array
        The priors the consensus used.
    model_probs : (n, K) array
        Calibrated model probabilities (mean of the MC passes).
    mc_probs : (T, n, K) array or None
        MC-dropout passes for BALD; ``None`` drops the BALD term.
    n_labels : (n,) int array
        Labels each image has.
    confusion : (K, K) array
        The confusion matrix of the player who will label (or of an average player).
    class_frequencies : (K,) array, optional
        For the rarity boost; defaults to ``class_priors``.

    Returns
    -------
    (n,) array, ``-inf`` where ``n_labels >= config.max_labels_per_image``
    """
    crowd = _as_probs(crowd_posteriors)
    n_classes = crowd.shape[1]
    log_k = float(np.log(n_classes))
    q = combine_evidence(crowd, model_probs, class_priors, model_weight=config.model_weight)
    value = config.gain_weight * expected_consensus_gain(q, crowd, confusion) / (1 - 1 / n_classes)
    if config.value_weight:
        value = value + config.value_weight * expected_information_gain(q, confusion) / log_k
    if config.bald_weight and mc_probs is not None:
        value = value + config.bald_weight * bald(mc_probs) / log_k
    if config.crowd_weight:
        value = value + config.crowd_weight * crowd_posterior_entropy(crowd) / log_k
    freqs = class_priors if class_frequencies is None else class_frequencies
    value = value * rarity_boost(q, np.asarray(freqs), alpha=config.rarity_alpha)
    full = np.asarray(n_labels) >= config.max_labels_per_image
    return np.asarray(np.where(full, -np.inf, value), dtype=np.float64)
