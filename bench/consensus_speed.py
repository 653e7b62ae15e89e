"""Speed of our Dawid–Skene against crowd-kit 1.4.2 on 1,000,000 synthetic labels, in one run.

100,000 items x 10 labels from 2,000 players (distinct per item), 5 classes, player accuracy
uniform in [0.55, 0.95] with Dirichlet off-diagonal errors (ml.synthetic_crowd, seed 0).

Run from the repository root with the bench venv (see bench/requirements-bench.txt):
    /tmp/bench-ml/bin/python bench/consensus_speed.py [--repeats 3] [--skip-crowd-kit]
Prints our best-of-N wall time (fit only, from integer codes), crowd-kit's single-run time on the
same labels (from its pandas DataFrame), their ratio, iterations and accuracies against the truth.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml.dawid_skene import fit_dawid_skene  # noqa: E402
from ml.majority import majority_vote  # noqa: E402
from ml.synthetic_crowd import make_crowd  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-crowd-kit", action="store_true")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument(
        "--equal-iterations",
        type=int,
        default=0,
        help="EM iterations for the equal-work run (default: as many as our converged fit used)",
    )
    args = parser.parse_args()
    crowd = make_crowd(
        np.random.default_rng(0),
        n_tasks=args.items,
        n_workers=2000,
        n_classes=5,
        labels_per_item=10,
    )
    sizes = {"n_tasks": crowd.n_tasks, "n_workers": crowd.n_workers, "n_classes": 5}
    print(
        f"{crowd.tasks.size:,} labels, {crowd.n_tasks:,} items, {crowd.n_workers:,} players, 5 classes"
    )
    print(f"python {platform.python_version()}, numpy {np.__version__}")

    times, cpu_times = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        ours = fit_dawid_skene(crowd.tasks, crowd.workers, crowd.labels, **sizes)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    best = min(times)
    # CPU seconds of this process: on a shared machine, a proxy for the wall time on an idle one.
    print(f"ours DS CPU time: best {min(cpu_times):.3f} s")
    accuracy = float(np.mean(ours.labels == crowd.true_labels))
    print(
        f"ours DS: best {best:.3f} s of {args.repeats} (all: {', '.join(f'{t:.3f}' for t in times)}), "
        f"{ours.n_iter} EM steps, converged={ours.converged}, accuracy {accuracy:.4f}"
    )
    start = time.perf_counter()
    mv = majority_vote(crowd.tasks, crowd.workers, crowd.labels, **sizes)
    print(
        f"ours MV: {time.perf_counter() - start:.3f} s, "
        f"accuracy {float(np.mean(mv.labels == crowd.true_labels)):.4f}"
    )
    if args.skip_crowd_kit:
        return

    import pandas as pd  # lazy: bench-only dependencies
    from crowdkit.aggregation import DawidSkene

    frame = pd.DataFrame({"task": crowd.tasks, "worker": crowd.workers, "label": crowd.labels})
    start, cpu_start = time.perf_counter(), time.process_time()
    model = DawidSkene(n_iter=100).fit(frame)
    reference = time.perf_counter() - start
    reference_cpu = time.process_time() - cpu_start
    ck_labels = model.probas_.idxmax(axis=1).reindex(range(crowd.n_tasks)).to_numpy()
    ck_accuracy = float(np.mean(ck_labels == crowd.true_labels))
    print(
        f"crowd-kit DS: {reference:.3f} s, {len(model.loss_history_)} iterations, "
        f"accuracy {ck_accuracy:.4f}"
    )
    print(
        f"ratio crowd-kit / ours, each with its default stopping rule: wall {reference / best:.1f}x, "
        f"CPU {reference_cpu / min(cpu_times):.1f}x (crowd-kit CPU {reference_cpu:.3f} s)"
    )

    # Equal work: both run exactly the same number of EM iterations (stopping rules disabled).
    steps = args.equal_iterations or ours.n_iter
    start, cpu_start = time.perf_counter(), time.process_time()
    fixed = fit_dawid_skene(
        crowd.tasks, crowd.workers, crowd.labels, tol=0.0, max_iter=steps, **sizes
    )
    ours_fixed, ours_fixed_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    start, cpu_start = time.perf_counter(), time.process_time()
    DawidSkene(n_iter=steps, tol=-np.inf).fit(frame)
    ref_fixed, ref_fixed_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(
        f"equal work, {steps} EM iterations each: ours {ours_fixed:.3f} s wall / "
        f"{ours_fixed_cpu:.3f} s CPU ({fixed.n_iter} steps), crowd-kit {ref_fixed:.3f} s wall / "
        f"{ref_fixed_cpu:.3f} s CPU, ratio wall {ref_fixed / ours_fixed:.1f}x, "
        f"CPU {ref_fixed_cpu / ours_fixed_cpu:.1f}x"
    )


if __name__ == "__main__":
    main()
