"""De-identification throughput on 512x512 CT slices: consent.deid beside dicognito, same run.

Usage (project venv; dicognito lives in its own venv, never in requirements):
    python3 -m venv /tmp/bench-deid && /tmp/bench-deid/bin/pip install dicognito==0.19.0 pydicom==3.0.2
    /work/main/.venv/bin/python bench/deid_throughput.py [--files 200] [--ocr-files 20]

Slices are generated from pydicom's bundled CT_small.dcm (its header, and its 128x128 pixels
upsampled to 512x512), each with PHI in names, IDs, dates and free text and its own UIDs.
Both tools run single-threaded in one process pinned to one core: figures are files/s/core.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consent.deid import (  # noqa: E402
    Limits,
    dicom_io,  # noqa: E402
    process,
)
from consent.deid.dicom_deid import DeidContext, deidentify_dataset  # noqa: E402

SECRET = b"bench-secret"
DICOGNITO_PY = os.environ.get(
    "DICOGNITO_PYTHON",
    "/tmp/bench-deid/bin/python",  # noqa: S108 - a throwaway benchmark venv
)
DICOGNITO_CODE = r"""
import io, json, sys, time
from pathlib import Path
import pydicom
from dicognito.anonymizer import Anonymizer
files = sorted(Path(sys.argv[1]).glob("*.dcm"))
blobs = [f.read_bytes() for f in files]
anonymizer = Anonymizer(seed="bench")
start = time.perf_counter()
for blob in blobs:
    ds = pydicom.dcmread(io.BytesIO(blob))
    anonymizer.anonymize(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
elapsed = time.perf_counter() - start
import dicognito
print(json.dumps({"files": len(blobs), "seconds": elapsed, "version": dicognito.__version__}))
"""


def make_slices(count: int, folder: Path) -> list[bytes]:
    template = pydicom.dcmread(
        Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    )
    base = template.pixel_array.astype(np.int16)
    big = np.kron(base, np.ones((4, 4), dtype=np.int16))
    study = generate_uid()
    series = generate_uid()
    blobs = []
    for index in range(count):
        ds = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm")
        ds.set_pixel_data(big + index % 7, "MONOCHROME2", 16, generate_instance_uid=False)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName = "Doe^Johnathan"
        ds.PatientID = "PID-8675309"
        ds.PatientBirthDate = "19710203"
        ds.InstitutionName = "St Elsewhere Hospital"
        ds.StudyDescription = "CT chest for Johnathan"
        ds.ImageComments = "MRN 8675309"
        ds.InstanceNumber = index + 1
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        blob = buffer.getvalue()
        (folder / f"{index:05d}.dcm").write_bytes(blob)
        blobs.append(blob)
    return blobs


def time_core(blobs: list[bytes]) -> float:
    """Parse + validate + PS3.15 basic profile + write: the part comparable to dicognito."""
    limits = Limits(ocr_enabled=False)
    start = time.perf_counter()
    for blob in blobs:
        ds = dicom_io.read(blob, limits)
        ctx = DeidContext.for_donor(
            secret=SECRET, donor_key="donor", sop_class_uid=str(ds.SOPClassUID)
        )
        deidentify_dataset(ds, ctx)
        dicom_io.write(ds)
    return time.perf_counter() - start


def time_pipeline(blobs: list[bytes], *, ocr: bool) -> float:
    limits = Limits(ocr_enabled=ocr)
    start = time.perf_counter()
    for blob in blobs:
        process(blob, filename_hint="bench", donor_key="donor", secret=SECRET, limits=limits)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--ocr-files", type=int, default=20)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        blobs = make_slices(args.files, folder)
        time_core(blobs[:5])  # warm-up (imports, caches)
        core = time_core(blobs)
        pipeline = time_pipeline(blobs, ocr=False)
        with_ocr = time_pipeline(blobs[: args.ocr_files], ocr=True)
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        command = [
            "taskset",
            "-c",
            str(sorted(os.sched_getaffinity(0))[0]),
            DICOGNITO_PY,
            "-c",
            DICOGNITO_CODE,
            tmp,
        ]
        completed = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        dicognito = json.loads(completed.stdout.strip().splitlines()[-1])
    rows = [
        ("consent.deid core (read+profile+write)", args.files, core),
        ("consent.deid process(), OCR off", args.files, pipeline),
        ("consent.deid process(), OCR on", args.ocr_files, with_ocr),
        (
            f"dicognito {dicognito['version']} (read+anonymize+write)",
            dicognito["files"],
            dicognito["seconds"],
        ),
    ]
    print(f"{'variant':52s} {'files':>6s} {'seconds':>8s} {'files/s/core':>13s}")
    for name, files, seconds in rows:
        print(f"{name:52s} {files:6d} {seconds:8.2f} {files / seconds:13.1f}")
    ratio = (args.files / core) / (dicognito["files"] / dicognito["seconds"])
    print(f"ratio consent.deid core / dicognito = {ratio:.2f}")


if __name__ == "__main__":
    main()
