"""``python -m ml aggregate``: consensus labels from a crowd answers CSV.

Contract (docs: ../shared/DESIGN.md, "Contracts"):

* input ``--input answers.csv`` with header ``task,worker,label`` (extra columns are ignored); values
  are any non-empty strings, surrounding whitespace is stripped; one row per answer;
* optional ``--gold gold.csv`` with header ``task,label``: known true classes, clamped;
* output ``task,label,confidence`` (to ``--output`` or stdout), one row per task of the answers and
  the gold file; ``label`` is written as it appeared in the input, ``confidence`` is the posterior
  probability of that label with 6 decimals.

Tasks are sorted numerically when every task id is an integer, otherwise lexicographically (by
Unicode code point); classes are coded in the same order, and a tie between classes goes to the first
one in that order. Malformed input ends with exit status 1 and a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ml.dawid_skene import fit_dawid_skene
from ml.encoding import encode, sorted_values
from ml.majority import majority_vote

__all__ = ["InputError", "aggregate_rows", "read_answers", "read_gold", "register", "run"]

logger = logging.getLogger(__name__)

METHODS = ("majority", "dawid-skene")


class InputError(Exception):
    """A CSV input that does not follow the contract; the message says where and why."""


@dataclass(frozen=True)
class Answers:
    """Parsed answers: three parallel lists of strings."""

    tasks: list[str]
    workers: list[str]
    labels: list[str]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``aggregate`` subcommand."""
    parser = subparsers.add_parser(
        "aggregate",
        help="consensus labels from task,worker,label answers",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--input", required=True, type=Path, help="answers CSV: task,worker,label")
    parser.add_argument("--gold", type=Path, help="known labels CSV: task,label")
    parser.add_argument("--output", type=Path, help="output CSV (default: stdout)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``aggregate``; returns the exit status (0 ok, 1 bad input)."""
    try:
        answers = read_answers(args.input)
        gold = read_gold(args.gold) if args.gold is not None else {}
        rows = aggregate_rows(answers, gold, method=args.method)
        if args.output is None:
            _write(sys.stdout, rows)
        else:
            with open(args.output, "w", newline="", encoding="utf-8") as handle:
                _write(handle, rows)
    except InputError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    except OSError as error:
        sys.stderr.write(f"error: {error.strerror or error}: {error.filename}\n")
        return 1
    return 0


def aggregate_rows(
    answers: Answers, gold: dict[str, str], *, method: str
) -> list[tuple[str, str, float]]:
    """Consensus ``(task, label, confidence)`` for every task, sorted by task.

    Parameters
    ----------
    answers : Answers
    gold : {task: label}
    method : "majority" or "dawid-skene"
    """
    task_names = sorted_values([*answers.tasks, *gold])
    class_names = sorted_values([*answers.labels, *gold.values()])
    if len(class_names) < 2:
        # One class only: nothing to infer, every task gets it with certainty.
        return [(task, class_names[0], 1.0) for task in task_names]
    tasks, _ = encode(answers.tasks, task_names)
    labels, _ = encode(answers.labels, class_names)
    workers, worker_names = encode(answers.workers)
    gold_codes = {
        int(code): int(label)
        for code, label in zip(
            encode(list(gold), task_names)[0],
            encode(list(gold.values()), class_names)[0],
            strict=True,
        )
    }
    fit = majority_vote if method == "majority" else fit_dawid_skene
    result = fit(
        tasks,
        workers,
        labels,
        n_tasks=len(task_names),
        n_workers=len(worker_names),
        n_classes=len(class_names),
        gold=gold_codes,
    )
    return [
        (task, class_names[int(code)], float(confidence))
        for task, code, confidence in zip(task_names, result.labels, result.confidence, strict=True)
    ]


def read_answers(path: Path) -> Answers:
    """Parse an answers CSV (header ``task,worker,label``).

    Raises
    ------
    InputError
        Missing or malformed header, a row with too few fields, an empty value, no answers.
    """
    tasks: list[str] = []
    workers: list[str] = []
    labels: list[str] = []
    for _line, (task, worker, label) in _records(path, ("task", "worker", "label")):
        tasks.append(task)
        workers.append(worker)
        labels.append(label)
    if not tasks:
        raise InputError(f"{path}: no answers after the header")
    return Answers(tasks=tasks, workers=workers, labels=labels)


def read_gold(path: Path) -> dict[str, str]:
    """Parse a gold CSV (header ``task,label``) into ``{task: label}``.

    Raises
    ------
    InputError
        As :func:`read_answers`, or one task given two different labels.
    """
    gold: dict[str, str] = {}
    for line, (task, label) in _records(path, ("task", "label")):
        if gold.setdefault(task, label) != label:
            raise InputError(f"{path}:{line}: task {task!r} has two gold labels")
    return gold


def _records(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, values of columns)`` for every data row, validating as it goes."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file, expected header {','.join(columns)}")
            names = [name.strip() for name in header]
            missing = [name for name in columns if name not in names]
            if missing:
                raise InputError(
                    f"{path}:1: header must contain {','.join(columns)}; "
                    f"missing {','.join(missing)} in {','.join(names)!r}"
                )
            duplicated = sorted({name for name in columns if names.count(name) > 1})
            if duplicated:
                raise InputError(f"{path}:1: duplicated column {','.join(duplicated)}")
            positions = [names.index(name) for name in columns]
            width = max(positions) + 1
            for row in reader:
                line = reader.line_num
                if not row or all(not value.strip() for value in row):
                    continue  # blank line
                if len(row) < width:
                    raise InputError(f"{path}:{line}: expected {len(names)} fields, got {len(row)}")
                values = [row[position].strip() for position in positions]
                for name, value in zip(columns, values, strict=True):
                    if not value:
                        raise InputError(f"{path}:{line}: empty {name}")
                yield line, values
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason})") from error
    except csv.Error as error:
        raise InputError(f"{path}: malformed CSV ({error})") from error


def _write(handle: TextIO, rows: list[tuple[str, str, float]]) -> None:
    """Write the output CSV."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(("task", "label", "confidence"))
    writer.writerows((task, label, f"{confidence:.6f}") for task, label, confidence in rows)
