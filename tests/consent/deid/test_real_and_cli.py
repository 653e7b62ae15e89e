"""The real Toshiba MR series end to end, and the offline runner behind ``manage.py deidentify``."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pydicom

from consent.deid import process
from consent.deid.cli import run
from tests.consent.deid.conftest import DONOR, NO_OCR, SECRET, assert_no_phi, build_ct, build_png

REAL_PHI = ("FA191122", "GHU", "Recherche", "20191203", "1.2.392.200036.9116", "-------------")


def test_real_mr_series_is_cleaned_and_stays_one_study(mr_series: list[Path]) -> None:
    studies, series, instances = set(), set(), set()
    for path in mr_series:
        processed = process(
            path.read_bytes(),
            filename_hint=path.name,
            donor_key=DONOR,
            secret=SECRET,
            limits=NO_OCR,
        )
        assert_no_phi(processed.cleaned, REAL_PHI)
        assert (processed.width, processed.height, processed.frames, processed.modality) == (
            64,
            64,
            1,
            "MR",
        )
        ds = pydicom.dcmread(io.BytesIO(processed.cleaned))
        assert not any(elem.tag.is_private for elem in ds.iterall())
        assert (
            "InstitutionName" not in ds
            and "StationName" not in ds
            and "DeviceSerialNumber" not in ds
        )
        studies.add(processed.study_instance_uid)
        series.add(processed.series_instance_uid)
        instances.add(processed.sop_instance_uid)
    assert len(studies) == 1 and len(series) == 1 and len(instances) == 40


def test_real_mr_ocr_finds_no_text(mr_series: list[Path]) -> None:
    processed = process(
        mr_series[20].read_bytes(), filename_hint="x", donor_key=DONOR, secret=SECRET
    )
    assert "ocr_unavailable" not in processed.flags
    assert processed.needs_review is False


def test_cli_run_writes_cleaned_files_and_report(tmp_path: Path, mr_series: list[Path]) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "ct.dcm").write_bytes(build_ct())
    (inputs / "photo.dat").write_bytes(build_png())  # the extension is never trusted
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../escape/p.png", build_png())
        archive.writestr("notes.txt", b"not an image")
    (inputs / "batch.zip").write_bytes(buffer.getvalue())
    out = tmp_path / "out"
    report = run(
        [inputs, mr_series[0], tmp_path / "missing"],
        out,
        secret=SECRET,
        donor_key=DONOR,
        limits=NO_OCR,
    )
    assert report == json.loads((out / "report.json").read_text())
    assert report["ok"] is False
    assert (report["cleaned"], report["rejected"]) == (4, 2)
    statuses = [
        (Path(e["input"]).name, e["member"], e["status"], e.get("code")) for e in report["entries"]
    ]
    assert statuses == [
        ("batch.zip", "p.png", "cleaned", None),
        ("batch.zip", "notes.txt", "rejected", "unsupported_format"),
        ("ct.dcm", None, "cleaned", None),
        ("photo.dat", None, "cleaned", None),
        ("0001.dcm", None, "cleaned", None),
        ("missing", None, "rejected", "no_input"),
    ]
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 5 and written[-1] == "report.json"
    assert {Path(e["output"]).parent for e in report["entries"] if e["status"] == "cleaned"} == {
        out
    }
    assert not (tmp_path / "escape").exists()
    for entry in report["entries"]:
        if entry["status"] == "cleaned":
            assert_no_phi(Path(entry["output"]).read_bytes())


def test_cli_run_is_ok_only_when_everything_is_cleaned(tmp_path: Path) -> None:
    source = tmp_path / "a.dcm"
    source.write_bytes(build_ct())
    report = run([source], tmp_path / "out", secret=SECRET, donor_key=DONOR, limits=NO_OCR)
    assert (report["ok"], report["cleaned"], report["rejected"]) == (True, 1, 0)
    assert report["entries"][0]["output"].endswith(".dcm")
