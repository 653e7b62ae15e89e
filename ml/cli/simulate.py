"""``python -m ml simulate``: active learning with a simulated crowd on a real labelled dataset.

For each dataset and seed, a crowd of simulated players (reliable, noisy, spammers, a few
adversaries; see :mod:`ml.al.crowd`) labels the images chosen by each strategy (random,
uncertainty-only, the combined priority); consensus is Dawid–Skene; the CNN is retrained on the
consensus posteriors. Writes to ``--output``:

* ``al_<dataset>.csv``: one row per strategy, seed and round (labels spent, consensus accuracy over
  the pool and over labelled images, model accuracy and ECE on the test split, temperature, seconds);
* ``al_<dataset>.png``: learning curves (mean ± std over seeds);
* ``al_summary.csv``: per dataset and strategy, the labels needed to reach random's final consensus
  accuracy and the saving against random. The same table is printed.

torch and matplotlib are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from error


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` subcommand."""
    parser = subparsers.add_parser(
        "simulate",
        help="active-learning simulation with a simulated crowd on a real image dataset",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--dataset",
        action="append",
        help="folder under <data>/images: pneumoniamnist (default), chest_xray_kermany_subset, "
        "ham10000_subset; repeat for several",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="default: $TESSERA_DATA_DIR or ../shared/data"
    )
    parser.add_argument("--output", type=Path, default=Path("al-simulation"), help="output folder")
    parser.add_argument("--budget", type=int, default=1800, help="labels per strategy")
    parser.add_argument("--batch-size", type=int, default=75, help="images per round")
    parser.add_argument("--pool-size", type=int, default=600, help="images the crowd may label")
    parser.add_argument("--seeds", type=_int_list, default=[0], help="e.g. 0,1,2")
    parser.add_argument(
        "--strategies", default="random,uncertainty,combined", help="comma-separated subset"
    )
    parser.add_argument("--players", type=int, default=50, help="simulated players")
    parser.add_argument("--retrain-every", type=int, default=2, help="rounds between retrainings")
    parser.add_argument("--image-size", type=int, default=64, help="side for JPEG datasets")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``simulate``; returns the exit status (0 ok, 1 bad arguments or missing data)."""
    from ml.al.crowd import CrowdSpec
    from ml.al.data import load_image_dataset
    from ml.al.report import mean_curves, plot_curves, savings_vs_random, write_records_csv
    from ml.al.simulate import STRATEGIES, RoundRecord, SimulationConfig, run_simulation

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies or not args.seeds or min(args.budget, args.batch_size) <= 0:
        sys.stderr.write(
            f"error: strategies must be among {', '.join(STRATEGIES)}; seeds, budget and batch "
            "size must be given and positive\n"
        )
        return 1
    base = SimulationConfig(
        budget=args.budget,
        batch_size=args.batch_size,
        pool_size=args.pool_size,
        strategies=strategies,
        retrain_every=args.retrain_every,
        crowd=CrowdSpec(n_players=args.players),
        n_threads=args.threads,
    )
    args.output.mkdir(parents=True, exist_ok=True)
    all_records: list[RoundRecord] = []
    for name in args.dataset or ["pneumoniamnist"]:
        try:
            dataset = load_image_dataset(name, data_dir=args.data_dir, size=args.image_size)
        except (FileNotFoundError, ValueError) as error:
            sys.stderr.write(f"error: {error}\n")
            return 1
        stride = 2 if dataset.images.shape[-1] >= 64 else 1
        records: list[RoundRecord] = []
        started = time.perf_counter()
        for seed in args.seeds:
            config = replace(base, seed=seed, stem_stride=stride)
            records.extend(run_simulation(dataset, config))
        logger.info("%s done in %.0f s", name, time.perf_counter() - started)
        write_records_csv(records, args.output / f"al_{name}.csv")
        if not args.no_plot:
            plot_curves(mean_curves(records), name, args.output / f"al_{name}.png")
        all_records.extend(records)
    summary = savings_vs_random(mean_curves(all_records))
    if summary:
        write_records_csv(summary, args.output / "al_summary.csv")
    lines = ["dataset,strategy,target,random_labels,strategy_labels,savings"]
    for row in summary:
        values = asdict(row)
        lines.append(
            ",".join(
                f"{values[k]:.4f}" if isinstance(values[k], float) else str(values[k])
                for k in ("dataset", "strategy", "target", "random_labels", "strategy_labels")
            )
            + f",{row.savings:.1%}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
