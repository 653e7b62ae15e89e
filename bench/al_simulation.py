"""Active-learning benchmark: labels needed to reach random's consensus accuracy, combined vs random.

Runs ``python -m ml simulate`` once per (dataset, seed) in parallel processes (``--jobs``), merges
the rounds and writes ``docs/al/al_<dataset>.csv``, ``docs/al/al_<dataset>.png`` and
``docs/al/al_summary.csv``; prints the summary table, the wall time and the machine. Usage::

    python bench/al_simulation.py [--seeds 0,1] [--jobs 4] [--output docs/al]

Each run retrains a CNN a dozen times per strategy: tens of minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml.al.report import (  # noqa: E402
    mean_curves,
    plot_curves,
    savings_vs_random,
    write_records_csv,
)
from ml.al.simulate import RoundRecord  # noqa: E402

DATASETS = ("pneumoniamnist", "chest_xray_kermany_subset")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def read_records(path: Path) -> list[RoundRecord]:
    types = {f: t for f, t in RoundRecord.__annotations__.items()}
    out = []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            values = {
                k: (int(v) if types[k] == "int" else float(v) if types[k] == "float" else v)
                for k, v in row.items()
            }
            out.append(RoundRecord(**values))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "al")
    parser.add_argument(
        "--reuse", action="store_true", help="skip (dataset, seed) runs whose CSV already exists"
    )
    args, extra = parser.parse_known_args()
    parts = args.output / "runs"
    runs = [(d, s) for d in args.datasets.split(",") for s in args.seeds.split(",")]

    def csv_of(dataset: str, seed: str) -> Path:
        return parts / f"{dataset}_seed{seed}" / f"al_{dataset}.csv"

    print("machine:", cpu_model(), f"({len(os.sched_getaffinity(0))} cores)")
    started = time.perf_counter()
    pending = [r for r in runs if not (args.reuse and csv_of(*r).is_file())]
    running: list[subprocess.Popen[bytes]] = []
    failed = 0
    while pending or running:
        while pending and len(running) < args.jobs:
            dataset, seed = pending.pop(0)
            out = parts / f"{dataset}_seed{seed}"
            command = [sys.executable, "-m", "ml", "simulate", f"--dataset={dataset}"]
            command += [
                f"--seeds={seed}",
                f"--threads={args.threads}",
                f"--output={out}",
                "--no-plot",
            ]
            command += extra
            print("run:", " ".join(command[1:]), flush=True)
            parts.mkdir(parents=True, exist_ok=True)
            log = (parts / f"{dataset}_seed{seed}.log").open("w")
            running.append(subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log))
        time.sleep(2)
        still = []
        for proc in running:
            if proc.poll() is None:
                still.append(proc)
            elif proc.returncode != 0:
                failed += 1
        running = still
    wall = time.perf_counter() - started
    records: list[RoundRecord] = []
    for dataset, seed in runs:
        path = csv_of(dataset, seed)
        if path.is_file():
            records.extend(read_records(path))
    curves = mean_curves(records)
    for dataset in sorted({r.dataset for r in records}):
        rows = [r for r in records if r.dataset == dataset]
        write_records_csv(rows, args.output / f"al_{dataset}.csv")
        plot_curves(curves, dataset, args.output / f"al_{dataset}.png")
    summary = savings_vs_random(curves)
    write_records_csv(summary, args.output / "al_summary.csv")
    print("dataset,strategy,target_consensus_acc,random_labels,strategy_labels,savings")
    for s in summary:
        print(
            f"{s.dataset},{s.strategy},{s.target:.4f},{s.random_labels:.0f},"
            f"{s.strategy_labels:.0f},{s.savings:.1%}"
        )
    for (dataset, strategy), c in sorted(curves.items()):
        print(
            f"{dataset} {strategy}: final consensus {c.consensus_accuracy[-1]:.3f} "
            f"model {c.model_accuracy[-1]:.3f} at {c.labels_spent[-1]:.0f} labels "
            f"({c.n_seeds} seeds)"
        )
    print(f"wall time: {wall:.0f} s, failed runs: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
