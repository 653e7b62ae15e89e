import csv
import dataclasses

import numpy as np
import pytest

from ml.__main__ import main
from ml.al.crowd import CrowdSpec
from ml.al.data import load_image_dataset
from ml.al.simulate import SimulationConfig, make_splits, run_simulation

TINY = SimulationConfig(
    budget=60,
    batch_size=20,
    pool_size=40,
    n_gold=20,
    mc_passes=3,
    initial_epochs=3,
    epochs_per_round=1,
    crowd=CrowdSpec(n_players=12),
    n_threads=1,
)


@pytest.fixture(scope="module")
def pneumonia():
    return load_image_dataset("pneumoniamnist")


def without_time(records):
    return [dataclasses.replace(r, seconds=0.0) for r in records]


def test_tiny_simulation_runs_every_strategy_and_is_deterministic(pneumonia):
    records = run_simulation(pneumonia, TINY)
    by_strategy = {s: [r for r in records if r.strategy == s] for s in TINY.strategies}
    for rows in by_strategy.values():
        assert [r.labels_spent for r in rows] == [20, 40, 60]
        assert [r.round for r in rows] == [0, 1, 2]
        assert all(r.images_labelled <= r.labels_spent for r in rows)
        assert all(0.0 <= r.consensus_accuracy <= 1.0 for r in rows)
    # Same first batch, crowd and labels for every strategy.
    first = {(r.consensus_accuracy, r.model_accuracy) for r in records if r.round == 0}
    assert len(first) == 1
    assert without_time(run_simulation(pneumonia, TINY)) == without_time(records)


def test_splits_are_disjoint_and_group_aware(pneumonia):
    splits = make_splits(pneumonia, TINY)
    assert (len(splits.pool), len(splits.gold), len(splits.test)) == (40, 20, 468)
    assert not set(splits.pool) & set(splits.gold)
    assert set(pneumonia.splits[splits.test]) == {"test"}


def test_group_split_keeps_patients_together():
    kermany = load_image_dataset("chest_xray_kermany_subset", size=16)
    splits = make_splits(kermany, dataclasses.replace(TINY, pool_size=None))
    groups = [set(kermany.groups[s]) for s in (splits.pool, splits.gold, splits.test)]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2])
    assert not (groups[1] & groups[2])
    assert sum(map(len, (splits.pool, splits.gold, splits.test))) == 1000


def test_cli_writes_curves_plot_and_summary(tmp_path, capsys):
    status = main(
        [
            "simulate",
            "--pool-size=30",
            "--budget=40",
            "--batch-size=20",
            "--players=10",
            "--threads=1",
            "--strategies=random,combined",
            f"--output={tmp_path}",
        ]
    )
    assert status == 0
    with (tmp_path / "al_pneumoniamnist.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["strategy"], r["labels_spent"]) for r in rows] == [
        ("random", "20"),
        ("random", "40"),
        ("combined", "20"),
        ("combined", "40"),
    ]
    assert (tmp_path / "al_pneumoniamnist.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "dataset,strategy,target,random_labels,strategy_labels,savings"
    assert out[1].startswith("pneumoniamnist,combined,")


def test_cli_rejects_an_unknown_strategy(tmp_path, capsys):
    assert main(["simulate", "--strategies=psychic", f"--output={tmp_path}"]) == 1
    assert "strategies must be among" in capsys.readouterr().err
    assert not np.any([p.suffix == ".csv" for p in tmp_path.iterdir()])
