"""A simulated crowd: players with confusion matrices, from experts to spammers and adversaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

PLAYER_KINDS = ("reliable", "noisy", "spammer", "adversary")


@dataclass(frozen=True)
class CrowdSpec:
    """How a simulated crowd is drawn.

    Attributes
    ----------
    n_players : number of players.
    share_noisy, share_spammers, share_adversaries : shares of those kinds; the rest is reliable.
    reliable_beta, noisy_beta, adversary_beta : Beta(a, b) of each true class's per-class accuracy
        (diagonal of the confusion matrix); the off-diagonal mass of a row is spread by a flat
        Dirichlet. Means: 0.84, 0.62, 0.20.
    activity_exponent : player ``r`` (in a random order) labels with weight ``(r + 1) ** -s``: a few
        players do most of the work, as on every volunteer platform.
    """

    n_players: int = 50
    share_noisy: float = 0.30
    share_spammers: float = 0.15
    share_adversaries: float = 0.05
    reliable_beta: tuple[float, float] = (8.0, 1.5)
    noisy_beta: tuple[float, float] = (5.0, 3.0)
    adversary_beta: tuple[float, float] = (2.0, 8.0)
    activity_exponent: float = 0.8


@dataclass(frozen=True)
class SimulatedCrowd:
    """A drawn crowd.

    Attributes
    ----------
    confusions : (P, K, K) array; ``confusions[p, z, y] = P(player p says y | true class z)``.
    kinds : (P,) array of str from :data:`PLAYER_KINDS`.
    activity : (P,) array summing to one; the chance that the next label comes from each player.
    """

    confusions: NDArray[np.float64]
    kinds: NDArray[np.str_]
    activity: NDArray[np.float64]

    @property
    def n_players(self) -> int:
        return int(self.confusions.shape[0])


def _skilled_confusion(
    n_classes: int, beta: tuple[float, float], rng: np.random.Generator
) -> NDArray[np.float64]:
    conf = np.zeros((n_classes, n_classes))
    for z in range(n_classes):
        acc = rng.beta(*beta)
        others = [k for k in range(n_classes) if k != z]
        conf[z, z] = acc
        conf[z, others] = (1.0 - acc) * rng.dirichlet(np.ones(len(others)))
    return conf


def draw_crowd(spec: CrowdSpec, n_classes: int, rng: np.random.Generator) -> SimulatedCrowd:
    """Draw players for a ``n_classes`` task.

    Spammers answer independently of the image: every row of their matrix is the same random
    distribution (some always press the same button). Adversaries mostly pick a wrong class.

    Returns
    -------
    SimulatedCrowd with ``spec.n_players`` players (kinds counts rounded down, the rest reliable).
    """
    n = spec.n_players
    counts = {
        "noisy": int(spec.share_noisy * n),
        "spammer": int(spec.share_spammers * n),
        "adversary": int(spec.share_adversaries * n),
    }
    counts["reliable"] = n - sum(counts.values())
    kinds = np.array([k for k in PLAYER_KINDS for _ in range(counts[k])])
    kinds = kinds[rng.permutation(n)]
    confusions = np.zeros((n, n_classes, n_classes))
    betas = {
        "reliable": spec.reliable_beta,
        "noisy": spec.noisy_beta,
        "adversary": spec.adversary_beta,
    }
    for p, kind in enumerate(kinds):
        if kind == "spammer":
            confusions[p] = rng.dirichlet(np.full(n_classes, 0.5))[None, :]
        else:
            confusions[p] = _skilled_confusion(n_classes, betas[str(kind)], rng)
    weights = (np.arange(n) + 1.0) ** -spec.activity_exponent
    activity = weights[rng.permutation(n)]
    return SimulatedCrowd(confusions=confusions, kinds=kinds, activity=activity / activity.sum())


def draw_labels(
    crowd: SimulatedCrowd,
    images: NDArray[np.integer],
    true_labels: NDArray[np.integer],
    seen: NDArray[np.bool_],
    rng: np.random.Generator,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """One label for each image from a player who has not labelled it yet.

    Parameters
    ----------
    crowd : SimulatedCrowd
    images : (m,) int array
        Images to label (pool indices).
    true_labels : (n_pool,) int array
    seen : (P, n_pool) bool array
        ``seen[p, i]``: player ``p`` already labelled image ``i``; updated in place.
    rng : numpy Generator

    Returns
    -------
    images, workers, labels : (m',) int arrays
        ``m' <= m``: an image every player has already labelled is dropped.
    """
    out_images, out_workers, out_labels = [], [], []
    n_classes = crowd.confusions.shape[1]
    for i in np.asarray(images, dtype=np.int64):
        weights = np.where(seen[:, i], 0.0, crowd.activity)
        total = weights.sum()
        if total <= 0:
            continue
        p = int(rng.choice(crowd.n_players, p=weights / total))
        seen[p, i] = True
        label = int(rng.choice(n_classes, p=crowd.confusions[p, int(true_labels[i])]))
        out_images.append(int(i))
        out_workers.append(p)
        out_labels.append(label)
    as_int = lambda xs: np.asarray(xs, dtype=np.int64)  # noqa: E731
    return as_int(out_images), as_int(out_workers), as_int(out_labels)
