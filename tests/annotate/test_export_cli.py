"""`python manage.py export_dataset DATASET --output FILE.zip [--format csv|coco]`."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Export
from tests.annotate.review_export_factories import (
    consensus_set,
    consented_image,
    dataset_with_classes,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    dataset = dataset_with_classes("a", "b", slug="cli-set")
    consensus_set(consented_image(dataset), {"a": 0.7, "b": 0.3}, 3, 3)
    consensus_set(consented_image(dataset, research="deny"), {"a": 0.9, "b": 0.1}, 3, 3)
    return dataset


def test_csv_is_the_default_and_the_file_is_the_recorded_snapshot(dataset, tmp_path):
    output = tmp_path / "out.zip"
    stdout = io.StringIO()

    call_command("export_dataset", "cli-set", "--output", str(output), stdout=stdout)

    archive = zipfile.ZipFile(output)
    export = Export.objects.get()
    assert hashlib.sha256(output.read_bytes()).hexdigest() == export.sha256
    assert export.created_by is None and export.format == "csv"
    assert "labels.csv" in archive.namelist()
    assert not any(n.startswith("coco/") for n in archive.namelist())
    assert json.loads(archive.read("manifest.json"))["counts"]["images"] == 1
    assert f"cli-set v1: 1 images, sha256 {export.sha256}" in stdout.getvalue()


def test_coco_format_and_filters(dataset, tmp_path):
    output = tmp_path / "coco.zip"

    call_command(
        "export_dataset",
        "cli-set",
        "--output",
        str(output),
        "--format",
        "coco",
        "--min-confidence",
        "0.8",
    )

    archive = zipfile.ZipFile(output)
    assert "coco/classification.json" in archive.namelist()
    assert "labels.csv" not in archive.namelist()
    assert json.loads(archive.read("coco/classification.json"))["annotations"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--output", "{tmp}/x.zip"], "No dataset 'nope'."),
        (["cli-set", "--output", "{tmp}/x.tar"], "--output must name a .zip file."),
        (["cli-set", "--output", "{tmp}/x.zip", "--classes", "zebra"], "has no class zebra."),
    ],
)
def test_errors_exit_non_zero_without_writing(dataset, tmp_path, args, message):
    with pytest.raises(CommandError, match=message.replace(".", r"\.")):
        call_command("export_dataset", *[a.format(tmp=tmp_path) for a in args])

    assert not list(tmp_path.glob("x.*"))
    assert not Export.objects.exists()


def test_the_format_choice_is_enforced(dataset, tmp_path):
    with pytest.raises(CommandError):
        call_command(
            "export_dataset", "cli-set", "--output", str(tmp_path / "x.zip"), "--format", "xml"
        )
