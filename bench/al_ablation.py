"""Ablation: the combined priority without the model (crowd-only belief, no BALD) vs with it.

Runs the ``combined`` strategy with ``model_weight=0, bald_weight=0`` for one seed and compares the
labels needed to reach random's final consensus accuracy with the full combined run of the same
seed read from ``docs/al/al_<dataset>.csv`` (written by ``bench/al_simulation.py``; same splits,
crowd and first batch). Usage::

    python bench/al_ablation.py [--seed 0] [--datasets pneumoniamnist,chest_xray_kermany_subset]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml.al.acquisition import priority_config_for  # noqa: E402
from ml.al.crowd import draw_crowd  # noqa: E402
from ml.al.data import load_image_dataset  # noqa: E402
from ml.al.report import labels_to_reach  # noqa: E402
from ml.al.simulate import SimulationConfig, make_splits, run_strategy  # noqa: E402


def curve(path: Path, strategy: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    with path.open() as fh:
        rows = [
            r for r in csv.DictReader(fh) if r["strategy"] == strategy and int(r["seed"]) == seed
        ]
    x = np.array([float(r["labels_spent"]) for r in rows])
    return x, np.array([float(r["consensus_accuracy"]) for r in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", default="pneumoniamnist,chest_xray_kermany_subset")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("dataset,seed,target,random,combined,combined_without_model")
    for name in args.datasets.split(","):
        data = load_image_dataset(name)
        priority = dataclasses.replace(priority_config_for(name), model_weight=0.0, bald_weight=0.0)
        config = SimulationConfig(
            seed=args.seed,
            priority=priority,
            stem_stride=2 if data.images.shape[-1] >= 64 else 1,
            n_threads=args.threads,
        )
        crowd = draw_crowd(config.crowd, data.n_classes, np.random.default_rng([args.seed, 5]))
        records = run_strategy(data, make_splits(data, config), crowd, "combined", config)
        x = np.array([r.labels_spent for r in records], dtype=float)
        y = np.array([r.consensus_accuracy for r in records])
        saved = REPO / "docs" / "al" / f"al_{name}.csv"
        rx, ry = curve(saved, "random", args.seed)
        cx, cy = curve(saved, "combined", args.seed)
        target = float(ry[-1])
        print(
            f"{name},{args.seed},{target:.4f},{labels_to_reach(rx, ry, target):.0f},"
            f"{labels_to_reach(cx, cy, target):.0f},{labels_to_reach(x, y, target):.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
