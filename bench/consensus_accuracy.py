"""Accuracy of our aggregators against crowd-kit 1.4.2 on every crowd dataset, in one run.

Run from the repository root with the bench venv (see bench/requirements-bench.txt):
    /tmp/bench-ml/bin/python bench/consensus_accuracy.py [--data DIR]
Prints a Markdown table: accuracy (fraction of truth.csv tasks whose consensus equals the truth)
and wall time per method.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml.datasets import load_crowd_dataset  # noqa: E402
from ml.dawid_skene import fit_dawid_skene, fit_one_coin  # noqa: E402
from ml.majority import majority_vote  # noqa: E402


def crowd_kit_accuracy(folder: Path, method: str) -> tuple[float, float]:
    """Accuracy and seconds of a crowd-kit aggregator with its default parameters."""
    import pandas as pd  # lazy: bench-only dependency
    from crowdkit.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene

    answers = pd.read_csv(folder / "answers.csv", dtype=str)
    truth = pd.read_csv(folder / "truth.csv", dtype=str).set_index("task")["label"]
    model = {
        "ds": DawidSkene(n_iter=100),
        "mv": MajorityVote(),
        "oc": OneCoinDawidSkene(n_iter=100),
    }[method]
    start = time.perf_counter()
    labels = model.fit_predict(answers)
    seconds = time.perf_counter() - start
    return float((labels.reindex(truth.index) == truth).mean()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("TESSERA_DATA_DIR", REPO.parent / "shared" / "data")) / "crowd"
    parser.add_argument("--data", type=Path, default=default)
    args = parser.parse_args()
    from importlib.metadata import version

    print(f"crowd-kit {version('crowd-kit')}, numpy {version('numpy')}, scipy {version('scipy')}")
    print()
    print(
        "| dataset | ours DS | crowd-kit DS | ours MV | crowd-kit MV | ours one-coin | crowd-kit one-coin | ours DS s | crowd-kit DS s | DS iterations |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in sorted(p for p in args.data.iterdir() if (p / "answers.csv").is_file()):
        data = load_crowd_dataset(folder)
        start = time.perf_counter()
        ds = fit_dawid_skene(data.tasks, data.workers, data.labels, **data.sizes)
        ds_seconds = time.perf_counter() - start
        mv = majority_vote(data.tasks, data.workers, data.labels, **data.sizes)
        oc = fit_one_coin(data.tasks, data.workers, data.labels, **data.sizes)
        ck_ds, ck_seconds = crowd_kit_accuracy(folder, "ds")
        ck_mv, _ = crowd_kit_accuracy(folder, "mv")
        ck_oc, _ = crowd_kit_accuracy(folder, "oc")
        print(
            f"| {data.name} | {data.accuracy(ds.labels):.4f} | {ck_ds:.4f} "
            f"| {data.accuracy(mv.labels):.4f} | {ck_mv:.4f} "
            f"| {data.accuracy(oc.labels):.4f} | {ck_oc:.4f} "
            f"| {ds_seconds:.3f} | {ck_seconds:.3f} | {ds.n_iter}{'' if ds.converged else ' (cap)'} |"
        )


if __name__ == "__main__":
    main()
