"""Incremental Dawid–Skene against a full refit: distance and cost, on real and synthetic crowds.

Protocol per dataset: shuffle the answers (seed 0), fit on the first 90 %, fold the remaining 10 %
(0.2 % for the 1M-label crowd) in
by batches of 20 answers with ml.incremental.add_answers, then compare with a full fit on all answers:
largest absolute posterior difference, label agreement, accuracy of both against the truth, and the
mean time of one incremental batch against one full fit. Two variants: the default (touched tasks
only, 2 sweeps) and revisit_player_tasks=True (also every task of the batch's players).

Run from the repository root (only numpy/scipy needed):
    /work/main/.venv/bin/python bench/consensus_incremental.py [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml.datasets import load_crowd_dataset  # noqa: E402
from ml.dawid_skene import fit_dawid_skene  # noqa: E402
from ml.incremental import add_answers, start  # noqa: E402
from ml.synthetic_crowd import make_crowd  # noqa: E402

BATCH = 20


def compare(name: str, tasks, workers, labels, truth, sizes, holdout: float = 0.1) -> None:  # noqa: ANN001
    order = np.random.default_rng(0).permutation(tasks.size)
    cut = int((1.0 - holdout) * order.size)
    first, rest = order[:cut], order[cut:]
    begin = time.perf_counter()
    full = fit_dawid_skene(tasks, workers, labels, **sizes)
    full_seconds = time.perf_counter() - begin
    known = truth >= 0
    full_accuracy = np.mean(full.labels[known] == truth[known])
    initial = start(tasks[first], workers[first], labels[first], **sizes)
    for revisit in (False, True):
        state = initial
        begin = time.perf_counter()
        batches = 0
        for offset in range(0, rest.size, BATCH):
            batch = rest[offset : offset + BATCH]
            state = add_answers(
                state, tasks[batch], workers[batch], labels[batch], revisit_player_tasks=revisit
            )
            batches += 1
        per_batch = (time.perf_counter() - begin) / batches
        result = state.result()
        print(
            f"| {name} | {'players' if revisit else 'touched'} "
            f"| {np.abs(result.posteriors - full.posteriors).max():.3f} "
            f"| {np.mean(result.labels == full.labels):.4f} "
            f"| {np.mean(result.labels[known] == truth[known]):.4f} | {full_accuracy:.4f} "
            f"| {per_batch * 1000:.1f} | {full_seconds * 1000:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("TESSERA_DATA_DIR", REPO.parent / "shared" / "data")) / "crowd"
    parser.add_argument("--data", type=Path, default=default)
    args = parser.parse_args()
    print(
        "| dataset | revisit | max abs posterior diff | label agreement | accuracy incremental "
        "| accuracy full | ms per batch of 20 | ms full fit |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for folder in sorted(p for p in args.data.iterdir() if (p / "answers.csv").is_file()):
        data = load_crowd_dataset(folder)
        compare(data.name, data.tasks, data.workers, data.labels, data.truth, data.sizes)
    crowd = make_crowd(
        np.random.default_rng(0), n_tasks=4000, n_workers=100, n_classes=4, labels_per_item=5
    )
    sizes = {"n_tasks": 4000, "n_workers": 100, "n_classes": 4}
    compare(
        "synthetic 4000x5, 100 players, 4 classes",
        crowd.tasks,
        crowd.workers,
        crowd.labels,
        crowd.true_labels,
        sizes,
    )
    big = make_crowd(
        np.random.default_rng(0), n_tasks=100_000, n_workers=2000, n_classes=5, labels_per_item=10
    )
    sizes = {"n_tasks": 100_000, "n_workers": 2000, "n_classes": 5}
    # 0.2 % held out (100 batches): folding 10 % of 1M answers 20 at a time would take minutes.
    compare(
        "synthetic 1M labels (0.2 % folded in)",
        big.tasks,
        big.workers,
        big.labels,
        big.true_labels,
        sizes,
        holdout=0.002,
    )


if __name__ == "__main__":
    main()
