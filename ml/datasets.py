"""Load the crowd truth-inference datasets of ``$TESSERA_DATA_DIR/crowd`` as integer codes.

Each dataset folder holds ``answers.csv`` (``task,worker,label``) and ``truth.csv`` (``task,label``).
Used by tests and benchmarks; the platform reads its own tables instead.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml._crowd import IntArray
from ml.encoding import encode, sorted_values

__all__ = ["CrowdDataset", "load_crowd_dataset"]


@dataclass(frozen=True, eq=False)
class CrowdDataset:
    """Answers and ground truth of one dataset, coded like the ``aggregate`` CLI codes them.

    Attributes
    ----------
    name : str
    tasks, workers, labels : (n_answers,) int64
    truth : (n_tasks,) int64
        True class code, -1 where the dataset gives none.
    task_names, worker_names, class_names : list of str
    """

    name: str
    tasks: IntArray
    workers: IntArray
    labels: IntArray
    truth: IntArray
    task_names: list[str]
    worker_names: list[str]
    class_names: list[str]

    @property
    def sizes(self) -> dict[str, int]:
        """``n_tasks``, ``n_workers``, ``n_classes`` keyword arguments for the aggregators."""
        return {
            "n_tasks": len(self.task_names),
            "n_workers": len(self.worker_names),
            "n_classes": len(self.class_names),
        }

    def accuracy(self, labels: IntArray) -> float:
        """Fraction of tasks with a true class whose ``labels`` entry equals it."""
        known = self.truth >= 0
        return float(np.mean(labels[known] == self.truth[known]))


def load_crowd_dataset(folder: Path) -> CrowdDataset:
    """Read ``folder/answers.csv`` and ``folder/truth.csv``."""
    with open(folder / "answers.csv", newline="", encoding="utf-8") as handle:
        rows = [(r["task"], r["worker"], r["label"]) for r in csv.DictReader(handle)]
    with open(folder / "truth.csv", newline="", encoding="utf-8") as handle:
        truth = {r["task"]: r["label"] for r in csv.DictReader(handle)}
    task_names = sorted_values(r[0] for r in rows)
    class_names = sorted_values([*(r[2] for r in rows), *truth.values()])
    tasks, _ = encode([r[0] for r in rows], task_names)
    workers, worker_names = encode([r[1] for r in rows])
    labels, _ = encode([r[2] for r in rows], class_names)
    class_index = {name: code for code, name in enumerate(class_names)}
    truth_codes = np.array(
        [class_index[truth[name]] if name in truth else -1 for name in task_names], dtype=np.int64
    )
    return CrowdDataset(
        name=folder.name,
        tasks=tasks,
        workers=workers,
        labels=labels,
        truth=truth_codes,
        task_names=task_names,
        worker_names=worker_names,
        class_names=class_names,
    )
