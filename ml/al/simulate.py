"""Active-learning simulation: a simulated crowd labels a real image dataset.

For each strategy the loop is: select a batch of images → a simulated player labels each →
consensus (Dawid–Skene) over all labels so far → retrain the CNN on the consensus posteriors
(warm start) and calibrate it on gold → select the next batch. After every round the consensus is
scored against the true labels over the whole pool (an image nobody labelled gets the prior's
class) and the model against a held-out test split.

Strategies
----------
``random``
    Each label goes to a uniformly random pool image (the baseline).
``uncertainty``
    Model predictive entropy only (classic uncertainty sampling, top-k); an image is not picked
    again before the model has been retrained.
``combined``
    :func:`ml.al.acquisition.combined_priority` with the dataset's preset, diversity and random
    exploration.

Every strategy starts with the same random first batch, the same crowd and the same splits for a
given seed. This module imports torch (through :mod:`ml.al.model`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ml.al import acquisition
from ml.al.augment import AugmentConfig
from ml.al.crowd import CrowdSpec, SimulatedCrowd, draw_crowd, draw_labels
from ml.al.data import ImageDataset, group_split
from ml.al.metrics import accuracy, expected_calibration_error
from ml.al.model import (
    ModelConfig,
    Prediction,
    TrainedModel,
    calibrate,
    predict,
    train_classifier,
)

logger = logging.getLogger(__name__)

STRATEGIES = ("random", "uncertainty", "combined")


class ConsensusResult(Protocol):
    """What the loop needs from an aggregation result (Dawid–Skene's result satisfies it)."""

    posteriors: NDArray[np.float64]  # (n_tasks, K)
    priors: NDArray[np.float64]  # (K,)
    confusion: NDArray[np.float64]  # (n_workers, K, K)


Aggregator = Callable[..., ConsensusResult]


def dawid_skene_aggregator(
    tasks: NDArray[np.int64],
    workers: NDArray[np.int64],
    labels: NDArray[np.int64],
    *,
    n_tasks: int,
    n_workers: int,
    n_classes: int,
) -> ConsensusResult:
    """MAP Dawid–Skene from :mod:`ml.dawid_skene` (imported on first use).

    The confusion pseudocounts are 3 on the diagonal and 1 elsewhere (a weak "players are better
    than chance" prior): with the flat default most images have one label early on and EM can
    settle on a flipped or degenerate solution (measured on PneumoniaMNIST at 300 labels: 49%
    consensus accuracy on labelled images with flat pseudocounts against 71–74% with this prior
    and 71–73% for majority vote).
    """
    from ml.dawid_skene import fit_dawid_skene

    smoothing = np.ones((n_classes, n_classes)) + 2.0 * np.eye(n_classes)
    result: Any = fit_dawid_skene(
        tasks,
        workers,
        labels,
        n_tasks=n_tasks,
        n_workers=n_workers,
        n_classes=n_classes,
        smoothing=smoothing,
    )
    return result


@dataclass(frozen=True)
class SimulationConfig:
    """One simulation run (all strategies, one seed).

    Attributes
    ----------
    budget : labels each strategy may spend.
    batch_size : images selected per round (one label each); consensus is refitted every round.
    retrain_every : the model is retrained (warm start) every this many rounds, as the platform
        retrains less often than it aggregates.
    pool_size : images the crowd may label (None: everything left after gold and test).
    n_gold : expert-labelled images for temperature scaling (not in the pool, not counted).
    test_share : share of the dataset (by patient / lesion group) kept for model accuracy;
        PneumoniaMNIST uses its own test split.
    seed : seeds splits, crowd, labels, selection and the model.
    mc_passes : MC-dropout passes for BALD and the mean probabilities.
    initial_epochs, epochs_per_round : epochs of the first training and of each warm restart.
    strategies : subset of :data:`STRATEGIES`.
    priority : combined-priority weights; None = the dataset's preset.
    crowd : how players are drawn.
    augment : augmentation of the CNN (None = off).
    stem_stride : the CNN's first stride (2 for images of 64 px and more).
    n_threads : torch threads.
    """

    budget: int = 1800
    batch_size: int = 75
    retrain_every: int = 2
    pool_size: int | None = 600
    n_gold: int = 60
    test_share: float = 0.25
    seed: int = 0
    mc_passes: int = 10
    initial_epochs: int = 12
    epochs_per_round: int = 3
    strategies: tuple[str, ...] = STRATEGIES
    priority: acquisition.PriorityConfig | None = None
    crowd: CrowdSpec = field(default_factory=CrowdSpec)
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    stem_stride: int = 1
    n_threads: int = 2


@dataclass(frozen=True)
class Splits:
    """Indices into the dataset: pool (labelled by the crowd), gold and test; each (m,) int."""

    pool: NDArray[np.int64]
    gold: NDArray[np.int64]
    test: NDArray[np.int64]


@dataclass(frozen=True)
class RoundRecord:
    """Metrics after one round of one strategy."""

    dataset: str
    strategy: str
    seed: int
    round: int
    labels_spent: int
    images_labelled: int
    consensus_accuracy: float
    consensus_accuracy_labelled: float
    model_accuracy: float
    model_ece: float
    temperature: float
    seconds: float


def make_splits(dataset: ImageDataset, config: SimulationConfig) -> Splits:
    """Pool / gold / test indices, split by group so one patient never straddles two parts."""
    rng = np.random.default_rng([config.seed, 1])
    if dataset.name == "pneumoniamnist":
        test = np.flatnonzero(dataset.splits == "test")
        gold = rng.permutation(np.flatnonzero(dataset.splits == "val"))[: config.n_gold]
        pool = rng.permutation(np.flatnonzero(dataset.splits == "train"))
    else:
        test, rest = group_split(dataset.groups, (config.test_share, 1.0), rng)
        gold_share = config.n_gold / max(len(rest), 1)
        gold, pool = group_split(dataset.groups[rest], (gold_share, 1.0), rng)
        gold, pool = rest[gold], rng.permutation(rest[pool])
    if config.pool_size is not None:
        pool = pool[: config.pool_size]
    return Splits(pool=np.sort(pool), gold=np.sort(gold), test=np.sort(test))


def _consensus(
    aggregate: Aggregator,
    tasks: NDArray[np.int64],
    workers: NDArray[np.int64],
    labels: NDArray[np.int64],
    n_pool: int,
    n_players: int,
    n_classes: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Posteriors (n_pool, K) — the prior for unlabelled images —, priors (K,) and the
    label-weighted average player's confusion matrix (K, K)."""
    seen_tasks, t_codes = np.unique(tasks, return_inverse=True)
    seen_workers, w_codes = np.unique(workers, return_inverse=True)
    result = aggregate(
        t_codes.astype(np.int64),
        w_codes.astype(np.int64),
        labels,
        n_tasks=len(seen_tasks),
        n_workers=len(seen_workers),
        n_classes=n_classes,
    )
    priors = np.asarray(result.priors, dtype=np.float64)
    posteriors = np.tile(priors, (n_pool, 1))
    posteriors[seen_tasks] = np.asarray(result.posteriors, dtype=np.float64)
    counts = np.bincount(w_codes, minlength=len(seen_workers)).astype(np.float64)
    average = np.einsum("w,wij->ij", counts, np.asarray(result.confusion)) / counts.sum()
    average /= average.sum(axis=1, keepdims=True)
    return posteriors, priors, average


def _select(
    strategy: str,
    *,
    k: int,
    rng: np.random.Generator,
    eligible: NDArray[np.bool_],
    prediction: Prediction | None,
    posteriors: NDArray[np.float64],
    priors: NDArray[np.float64],
    n_labels: NDArray[np.int64],
    average_confusion: NDArray[np.float64],
    priority: acquisition.PriorityConfig,
) -> NDArray[np.int64]:
    if strategy == "random":
        candidates = np.flatnonzero(eligible)
        picked = rng.choice(candidates, size=min(k, len(candidates)), replace=False)
        return np.asarray(picked, dtype=np.int64)
    if prediction is None:
        raise ValueError(f"strategy {strategy!r} needs a model prediction")
    if strategy == "uncertainty":
        score = np.where(eligible, acquisition.entropy(prediction.probs), -np.inf)
        return acquisition.diverse_top_k(score, None, k, penalty=0.0)
    if strategy == "combined":
        score = acquisition.combined_priority(
            priority,
            crowd_posteriors=posteriors,
            class_priors=priors,
            model_probs=prediction.probs,
            mc_probs=prediction.mc_probs if len(prediction.mc_probs) else None,
            n_labels=n_labels,
            confusion=average_confusion,
        )
        score = np.where(eligible, score, -np.inf)
        return acquisition.select_batch(
            score,
            k,
            rng=rng,
            exploration=priority.exploration,
            embeddings=prediction.embeddings,
            diversity=priority.diversity,
        )
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def run_strategy(
    dataset: ImageDataset,
    splits: Splits,
    crowd: SimulatedCrowd,
    strategy: str,
    config: SimulationConfig,
    *,
    aggregate: Aggregator = dawid_skene_aggregator,
) -> list[RoundRecord]:
    """Run one strategy until the budget is spent; one record per round."""
    priority = config.priority or acquisition.priority_config_for(dataset.name)
    rng = np.random.default_rng([config.seed, 2])
    label_rng = np.random.default_rng([config.seed, 3])
    n_pool, n_classes = len(splits.pool), dataset.n_classes
    truth = dataset.labels[splits.pool]
    pool_images = dataset.images[splits.pool]
    model_config = ModelConfig(
        in_channels=dataset.images.shape[1],
        n_classes=n_classes,
        stem_stride=config.stem_stride,
        epochs=config.initial_epochs,
        seed=config.seed,
        n_threads=config.n_threads,
        augment=config.augment,
    )
    seen = np.zeros((crowd.n_players, n_pool), dtype=bool)
    n_labels = np.zeros(n_pool, dtype=np.int64)
    tasks: list[NDArray[np.int64]] = []
    workers: list[NDArray[np.int64]] = []
    labels: list[NDArray[np.int64]] = []
    model: TrainedModel | None = None
    prediction: Prediction | None = None
    test_probs = np.zeros((0, n_classes))
    since_retrain = np.zeros(n_pool, dtype=bool)  # labelled since the model last changed
    records: list[RoundRecord] = []
    # The same first batch for every strategy: nothing is known yet.
    batch = np.sort(
        np.random.default_rng([config.seed, 4]).choice(
            n_pool, size=min(config.batch_size, n_pool, config.budget), replace=False
        )
    )
    spent, round_no, start = 0, 0, time.perf_counter()
    while len(batch):
        got_tasks, got_workers, got_labels = draw_labels(crowd, batch, truth, seen, label_rng)
        tasks.append(got_tasks)
        workers.append(got_workers)
        labels.append(got_labels)
        np.add.at(n_labels, got_tasks, 1)
        spent += len(got_tasks)
        posteriors, priors, average_confusion = _consensus(
            aggregate,
            np.concatenate(tasks),
            np.concatenate(workers),
            np.concatenate(labels),
            n_pool,
            crowd.n_players,
            n_classes,
        )
        labelled = n_labels > 0
        since_retrain[got_tasks] = True
        if model is None or round_no % config.retrain_every == 0:
            confidence = posteriors.max(axis=1)
            model = train_classifier(
                pool_images[labelled],
                posteriors[labelled],
                confidence[labelled],
                model_config,
                init=model,
                epochs=None if model is None else config.epochs_per_round,
            )
            calibrate(model, dataset.images[splits.gold], dataset.labels[splits.gold])
            test_probs = predict(model, dataset.images[splits.test]).probs
            since_retrain[:] = False
            if strategy != "random":
                prediction = predict(
                    model,
                    pool_images,
                    mc_passes=config.mc_passes if strategy == "combined" else 0,
                    seed=config.seed + round_no,
                )
        test_truth = dataset.labels[splits.test]
        record = RoundRecord(
            dataset=dataset.name,
            strategy=strategy,
            seed=config.seed,
            round=round_no,
            labels_spent=spent,
            images_labelled=int(labelled.sum()),
            consensus_accuracy=accuracy(posteriors, truth),
            consensus_accuracy_labelled=accuracy(posteriors[labelled], truth[labelled]),
            model_accuracy=accuracy(test_probs, test_truth),
            model_ece=expected_calibration_error(test_probs, test_truth),
            temperature=model.temperature,
            seconds=time.perf_counter() - start,
        )
        records.append(record)
        logger.info(
            "%s %s seed %s round %s: %s labels, consensus %.3f, model %.3f",
            dataset.name,
            strategy,
            config.seed,
            round_no,
            spent,
            record.consensus_accuracy,
            record.model_accuracy,
        )
        k = min(config.batch_size, config.budget - spent)
        if k <= 0:
            break
        eligible = (n_labels < priority.max_labels_per_image) & ~seen.all(axis=0)
        if strategy == "uncertainty":
            eligible &= ~since_retrain
        batch = _select(
            strategy,
            k=k,
            rng=rng,
            eligible=eligible,
            prediction=prediction,
            posteriors=posteriors,
            priors=priors,
            n_labels=n_labels,
            average_confusion=average_confusion,
            priority=priority,
        )
        round_no += 1
    return records


def run_simulation(
    dataset: ImageDataset,
    config: SimulationConfig,
    *,
    aggregate: Aggregator = dawid_skene_aggregator,
) -> list[RoundRecord]:
    """All of ``config.strategies`` on one dataset with one seed (same splits and crowd)."""
    splits = make_splits(dataset, config)
    crowd = draw_crowd(config.crowd, dataset.n_classes, np.random.default_rng([config.seed, 5]))
    logger.info(
        "%s seed %s: pool %s, gold %s, test %s, players %s",
        dataset.name,
        config.seed,
        len(splits.pool),
        len(splits.gold),
        len(splits.test),
        crowd.n_players,
    )
    records: list[RoundRecord] = []
    for strategy in config.strategies:
        records.extend(run_strategy(dataset, splits, crowd, strategy, config, aggregate=aggregate))
    return records


def with_seed(config: SimulationConfig, seed: int) -> SimulationConfig:
    """A copy of ``config`` with another seed."""
    return replace(config, seed=seed)
