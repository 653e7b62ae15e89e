"""`manage.py deidentify INPUT... --output DIR [--donor-key KEY]` (the DESIGN.md contract)."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from django.core.management import call_command

from tests.factories import png_bytes


def test_exit_zero_when_every_input_is_cleaned(tmp_path: Path, mr_files, settings):
    settings.INTAKE_OCR_ENABLED = False
    out = tmp_path / "out"

    call_command("deidentify", str(mr_files[0]), str(mr_files[1]), "--output", str(out))

    report = json.loads((out / "report.json").read_text())
    assert (report["ok"], report["cleaned"], report["rejected"]) == (True, 2, 0)
    outputs = [Path(e["output"]) for e in report["entries"]]
    assert [p.parent for p in outputs] == [out, out]
    assert pydicom.dcmread(outputs[0]).PatientIdentityRemoved == "YES"


def test_exit_one_when_any_input_is_rejected(tmp_path: Path, settings, capsys):
    settings.INTAKE_OCR_ENABLED = False
    (tmp_path / "ok.png").write_bytes(png_bytes((80, 80), 90))
    (tmp_path / "bad.dcm").write_bytes(b"DICM not really")
    out = tmp_path / "out"

    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "deidentify", str(tmp_path / "ok.png"), str(tmp_path / "bad.dcm"), "--output", str(out)
        )

    report = json.loads((out / "report.json").read_text())
    assert exit_info.value.code == 1
    assert [e["status"] for e in report["entries"]] == ["cleaned", "rejected"]
    assert "rejected" in capsys.readouterr().err


def test_donor_key_decides_the_uids(tmp_path: Path, mr_files, settings):
    settings.INTAKE_OCR_ENABLED = False
    uids = []
    for key in ("donor-a", "donor-a", "donor-b"):
        out = tmp_path / key / str(len(uids))
        call_command("deidentify", str(mr_files[0]), "--output", str(out), "--donor-key", key)
        entry = json.loads((out / "report.json").read_text())["entries"][0]
        uids.append(pydicom.dcmread(entry["output"]).SOPInstanceUID)

    assert uids[0] == uids[1] != uids[2]
