"""The ``python -m ml aggregate`` contract of ../shared/DESIGN.md, through a real subprocess."""

from __future__ import annotations

import contextlib
import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from ml.__main__ import main

REPO = Path(__file__).resolve().parents[2]


def run_subprocess(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real entry point, ``python -m ml aggregate ...``, in a child process."""
    return subprocess.run(  # noqa: S603 - fixed interpreter and module, test-made paths
        [sys.executable, "-m", "ml", "aggregate", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Same entry function in-process (a child process costs ~2 s of numpy/scipy imports)."""
    argv = ["aggregate", *map(str, args)]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = int(stop.code or 0)
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


STRING_ANSWERS = """task,worker,label
img-b,alice,cat
img-b,bob,cat
img-b,carol,dog
img-a,alice,dog
img-a,bob,dog
img-a,carol,dog
img-c,alice,bird
"""


def test_string_labels_to_stdout_sorted_lexicographically(tmp_path: Path) -> None:
    answers = write(tmp_path / "answers.csv", STRING_ANSWERS)
    done = run_subprocess("--method", "majority", "--input", answers)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "task,label,confidence",
        "img-a,dog,1.000000",
        "img-b,cat,0.666667",
        "img-c,bird,1.000000",
    ]


def test_dawid_skene_with_gold_to_a_file(tmp_path: Path) -> None:
    answers = write(tmp_path / "answers.csv", STRING_ANSWERS)
    gold = write(tmp_path / "gold.csv", "task,label\nimg-b,dog\nimg-z,cat\n")
    output = tmp_path / "truth.csv"
    done = run_cli(
        "--method", "dawid-skene", "--input", answers, "--gold", gold, "--output", output
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    rows = list(csv.DictReader(output.open(encoding="utf-8")))
    assert [row["task"] for row in rows] == ["img-a", "img-b", "img-c", "img-z"]
    by_task = {row["task"]: row for row in rows}
    assert (by_task["img-b"]["label"], by_task["img-b"]["confidence"]) == ("dog", "1.000000")
    assert (by_task["img-z"]["label"], by_task["img-z"]["confidence"]) == ("cat", "1.000000")
    assert all(0.0 <= float(row["confidence"]) <= 1.0 for row in rows)


def test_integer_tasks_sort_numerically(tmp_path: Path) -> None:
    answers = write(
        tmp_path / "answers.csv",
        "task,worker,label\n10,w1,1\n9,w1,0\n100,w2,1\n9,w2,0\n10,w2,1\n100,w1,1\n",
    )
    done = run_cli("--method", "dawid-skene", "--input", answers)
    assert done.returncode == 0, done.stderr
    assert [line.split(",")[:2] for line in done.stdout.splitlines()[1:]] == [
        ["9", "0"],
        ["10", "1"],
        ["100", "1"],
    ]


def test_extra_columns_whitespace_and_bom_are_accepted(tmp_path: Path) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "\ufefftime, label ,task,worker\n1, yes ,a,w1\n2,no,a,w2\n3,yes,a,w3\n", encoding="utf-8"
    )
    done = run_cli("--method", "majority", "--input", answers)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["task,label,confidence", "a,yes,0.666667"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("task,worker\n1,a\n", "missing label"),
        ("task,worker,label\n", "no answers"),
        ("task,worker,label\n1,a\n", "answers.csv:2: expected 3 fields, got 2"),
        ("task,worker,label\n1,a,0\n2,,1\n", "answers.csv:3: empty worker"),
        ("task,task,worker,label\n1,1,a,0\n", "duplicated column task"),
    ],
)
def test_malformed_answers_fail_cleanly(tmp_path: Path, content: str, message: str) -> None:
    answers = write(tmp_path / "answers.csv", content)
    done = run_cli("--method", "dawid-skene", "--input", answers)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_bad_encoding_missing_file_and_conflicting_gold(tmp_path: Path) -> None:
    binary = tmp_path / "answers.csv"
    binary.write_bytes(b"task,worker,label\n1,\xff\xfe,0\n")
    done = run_cli("--method", "majority", "--input", binary)
    assert (done.returncode, "not UTF-8" in done.stderr) == (1, True)
    done = run_cli("--method", "majority", "--input", tmp_path / "nope.csv")
    assert (done.returncode, "No such file" in done.stderr) == (1, True)
    answers = write(tmp_path / "ok.csv", STRING_ANSWERS)
    gold = write(tmp_path / "gold.csv", "task,label\nimg-a,dog\nimg-a,cat\n")
    done = run_cli("--method", "majority", "--input", answers, "--gold", gold)
    assert done.returncode == 1
    assert "gold.csv:3: task 'img-a' has two gold labels" in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    answers = write(tmp_path / "answers.csv", "task,worker,label\n1,a\n")
    done = run_subprocess("--method", "dawid-skene", "--input", answers)
    assert done.returncode == 1
    assert done.stderr == f"error: {answers}:2: expected 3 fields, got 2\n"


def test_usage_errors_exit_2() -> None:
    done = run_cli("--method", "median", "--input", "x.csv")
    assert done.returncode == 2
    assert "invalid choice: 'median'" in done.stderr
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2


def test_real_dataset_through_the_cli(tmp_path: Path, crowd_dir: Path) -> None:
    folder = crowd_dir / "s4_Dog_data"
    output = tmp_path / "truth.csv"
    done = run_subprocess(
        "--method", "dawid-skene", "--input", folder / "answers.csv", "--output", output
    )
    assert done.returncode == 0, done.stderr
    ours = {row["task"]: row["label"] for row in csv.DictReader(output.open(encoding="utf-8"))}
    truth = {row["task"]: row["label"] for row in csv.DictReader((folder / "truth.csv").open())}
    assert len(ours) == 807
    assert round(sum(ours[task] == label for task, label in truth.items()) / len(truth), 3) >= 0.843
