"""Learning curves of a simulation: CSV, summary figures and a PNG (matplotlib imported lazily)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)


def write_records_csv(records: Sequence[Any], path: str | Path) -> None:
    """One row per record (dataclass instances, e.g. ``RoundRecord``), header from its fields."""
    if not records:
        raise ValueError("no records to write")
    names = [f.name for f in fields(records[0])]
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for record in records:
            writer.writerow(
                {k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in asdict(record).items()}
            )


def labels_to_reach(
    labels_spent: NDArray[np.floating], metric: NDArray[np.floating], target: float
) -> float:
    """Labels at which a learning curve first reaches ``target`` (linear interpolation).

    Parameters
    ----------
    labels_spent : (r,) increasing array
    metric : (r,) array
    target : float

    Returns
    -------
    float
        The interpolated label count of the first crossing; ``labels_spent[0]`` when the curve
        starts at or above the target; ``nan`` when it never reaches it.
    """
    x = np.asarray(labels_spent, dtype=np.float64)
    y = np.asarray(metric, dtype=np.float64)
    above = np.flatnonzero(y >= target)
    if len(above) == 0:
        return float("nan")
    j = int(above[0])
    if j == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[j - 1], x[j], y[j - 1], y[j]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


@dataclass(frozen=True)
class Curve:
    """A learning curve averaged over seeds.

    Attributes
    ----------
    labels_spent : (r,) label counts (rounds of equal size, identical across seeds).
    consensus_accuracy, model_accuracy : (r,) means over seeds.
    consensus_std, model_std : (r,) standard deviations over seeds.
    n_seeds : number of seeds averaged.
    """

    labels_spent: NDArray[np.float64]
    consensus_accuracy: NDArray[np.float64]
    model_accuracy: NDArray[np.float64]
    consensus_std: NDArray[np.float64]
    model_std: NDArray[np.float64]
    n_seeds: int


def mean_curves(records: Iterable[Any]) -> dict[tuple[str, str], Curve]:
    """Average ``RoundRecord``-like rows per (dataset, strategy) over seeds, round by round.

    Rounds present in every seed are kept (the shortest run decides the length); the label count of
    a round is the mean over seeds (equal when no image ran out of players).
    """
    grouped: dict[tuple[str, str], dict[int, list[Any]]] = {}
    for r in records:
        grouped.setdefault((r.dataset, r.strategy), {}).setdefault(r.seed, []).append(r)
    curves: dict[tuple[str, str], Curve] = {}
    for key, by_seed in grouped.items():
        runs = [sorted(rs, key=lambda r: r.round) for rs in by_seed.values()]
        n = min(len(rs) for rs in runs)

        def stack(attr: str, runs: list[list[Any]] = runs, n: int = n) -> NDArray[np.float64]:
            return np.array([[getattr(r, attr) for r in rs[:n]] for rs in runs], dtype=float)

        cons, model = stack("consensus_accuracy"), stack("model_accuracy")
        curves[key] = Curve(
            labels_spent=stack("labels_spent").mean(axis=0),
            consensus_accuracy=cons.mean(axis=0),
            model_accuracy=model.mean(axis=0),
            consensus_std=cons.std(axis=0),
            model_std=model.std(axis=0),
            n_seeds=len(runs),
        )
    return curves


@dataclass(frozen=True)
class Savings:
    """Labels needed to reach a consensus accuracy, one strategy against random.

    ``target`` is random's mean consensus accuracy at its last round (its full budget);
    ``savings = 1 - strategy_labels / random_labels`` (nan when the strategy never gets there).
    """

    dataset: str
    strategy: str
    target: float
    random_labels: float
    strategy_labels: float
    savings: float


def savings_vs_random(curves: dict[tuple[str, str], Curve]) -> list[Savings]:
    """For every dataset with a ``random`` curve: each other strategy's :class:`Savings`."""
    out = []
    for (dataset, strategy), curve in sorted(curves.items()):
        base = curves.get((dataset, "random"))
        if base is None or strategy == "random":
            continue
        target = float(base.consensus_accuracy[-1])
        random_labels = labels_to_reach(base.labels_spent, base.consensus_accuracy, target)
        labels = labels_to_reach(curve.labels_spent, curve.consensus_accuracy, target)
        out.append(
            Savings(
                dataset=dataset,
                strategy=strategy,
                target=target,
                random_labels=random_labels,
                strategy_labels=labels,
                savings=1.0 - labels / random_labels,
            )
        )
    return out


def plot_curves(curves: dict[tuple[str, str], Curve], dataset: str, path: str | Path) -> None:
    """Two panels (consensus accuracy, model accuracy) versus labels spent, mean ± std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"random": ("tab:grey", "--"), "uncertainty": ("tab:orange", ":")}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    panels = (
        ("consensus_accuracy", "consensus_std", "consensus accuracy (whole pool)"),
        ("model_accuracy", "model_std", "model accuracy (test split)"),
    )
    n_seeds = 0
    for ax, (mean_attr, std_attr, title) in zip(axes, panels, strict=True):
        for (ds, strategy), curve in sorted(curves.items()):
            if ds != dataset:
                continue
            n_seeds = curve.n_seeds
            colour, line = styles.get(strategy, ("tab:blue", "-"))
            mean, std = getattr(curve, mean_attr), getattr(curve, std_attr)
            ax.plot(curve.labels_spent, mean, line, color=colour, label=strategy)
            ax.fill_between(curve.labels_spent, mean - std, mean + std, color=colour, alpha=0.15)
        ax.set_xlabel("labels spent")
        ax.set_ylabel("accuracy against truth")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{dataset}: simulated crowd, mean ± std over {n_seeds} seed(s)")
    fig.savefig(Path(path), dpi=110)
    plt.close(fig)
