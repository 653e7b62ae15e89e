"""Malformed, truncated, oversized and bomb inputs: each rejected with a reason, nothing escapes."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from consent.deid import Limits, Rejected, process
from tests.consent.deid.conftest import (
    DONOR,
    NO_OCR,
    SECRET,
    build_ct,
    phi_dataset,
    set_ct_pixels,
    to_bytes,
)

PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
# Only files already on disk: pydicom.data may otherwise try to download (offline here).
BUNDLED = sorted(p.name for p in PYDICOM_TEST_FILES.glob("*.dcm"))
EXPECTED_BUNDLED = {
    "CT_small.dcm": None,
    "MR_small.dcm": None,
    "MR_small_RLE.dcm": None,
    "SC_rgb_rle_2frame.dcm": None,
    "JPEG2000.dcm": None,
    "MR_truncated.dcm": "dimension_mismatch",
    "ExplVR_BigEnd.dcm": "unsupported_transfer_syntax",
    # Compressed transfer syntaxes decode through pylibjpeg (JPEG-LS, JPEG lossless, RLE, J2K).
    "MR_small_jpeg_ls_lossless.dcm": None,
    "JPEGLSNearLossless_16.dcm": None,
    "SC_rgb_jpeg.dcm": None,
    "SC_rgb_jpeg_gdcm.dcm": None,  # JPEG Lossless, process 14
    "rtplan.dcm": "sop_class_not_allowed",
    "rtdose.dcm": "sop_class_not_allowed",
    "no_meta.dcm": "unsupported_format",
    "waveform_ecg.dcm": "sop_class_not_allowed",
}


def _run(data: bytes, limits: Limits = NO_OCR):
    return process(data, filename_hint="x", donor_key=DONOR, secret=SECRET, limits=limits)


def _reject(data: bytes, limits: Limits = NO_OCR) -> Rejected:
    with pytest.raises(Rejected) as info:
        _run(data, limits)
    assert info.value.reason.endswith(".")
    assert len(info.value.reason) > 15
    return info.value


def test_bundled_pydicom_files_are_present() -> None:
    assert len(BUNDLED) > 60
    assert set(EXPECTED_BUNDLED) <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_pydicom_file_is_processed_or_rejected_with_a_reason(name: str) -> None:
    data = (PYDICOM_TEST_FILES / name).read_bytes()
    try:
        processed = _run(data)
    except Rejected as rejected:
        assert rejected.reason and rejected.code
        assert EXPECTED_BUNDLED.get(name, rejected.code) == rejected.code
        return
    assert EXPECTED_BUNDLED.get(name) is None
    reread = pydicom.dcmread(io.BytesIO(processed.cleaned))
    assert reread.PatientIdentityRemoved == "YES"
    assert processed.width > 0 and processed.height > 0


def _truncations(data: bytes) -> list[int]:
    step = max(len(data) // 60, 1)
    edges = [0, 1, 127, 128, 131, 132, 140, 200, len(data) - 2, len(data) - 1]
    return sorted(set(range(1, len(data), step)) | set(edges))


def test_real_mr_file_truncated_at_many_offsets_is_always_rejected(mr_series: list[Path]) -> None:
    data = mr_series[0].read_bytes()
    codes = {}
    for offset in _truncations(data):
        codes[offset] = _reject(data[:offset]).code
    assert set(codes.values()) <= {
        "empty_file",
        "unsupported_format",
        "parse_error",
        "no_pixel_data",
        "dimension_mismatch",
        "missing_attribute",
    }
    assert codes[len(data) - 1] == "dimension_mismatch"
    assert codes[127] == "unsupported_format"


def test_generated_multiframe_truncated_is_rejected() -> None:
    data = build_ct(frames=4)
    # The last 40 bytes hold the trailing padding element, which the profile removes anyway.
    for offset in range(len(data) - 4000, len(data) - 40, 997):
        assert _reject(data[:offset]).code == "dimension_mismatch"


def _mutated(**changes: object) -> bytes:
    ds = phi_dataset()
    set_ct_pixels(ds, np.zeros((64, 64), dtype=np.int16))
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return to_bytes(ds)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"Rows": 128}, "dimension_mismatch"),
        ({"BitsAllocated": 12}, "unsupported_pixels"),
        ({"SamplesPerPixel": 2}, "unsupported_pixels"),
        ({"PhotometricInterpretation": "HSV"}, "unsupported_pixels"),
        ({"Rows": 0}, "corrupt_header"),
        ({"Columns": None}, "missing_attribute"),
        ({"SOPClassUID": None}, "missing_attribute"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.481.2"}, "sop_class_not_allowed"),
        ({"SOPClassUID": "1.2.3.4.5.6.7"}, "sop_class_not_allowed"),
        ({"PixelData": None}, "no_pixel_data"),
    ],
)
def test_corrupt_or_disallowed_headers_are_rejected(changes: dict[str, object], code: str) -> None:
    assert _reject(_mutated(**changes)).code == code


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x00" * 128 + b"DICM",
        b"\x00" * 128 + b"DICM" + b"\xff" * 64,
        b"\x89PNG\r\n\x1a\n",
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\x00" * 17,
        b"\xff\xd8\xff",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 8 + b"\xff\xd9",
        b"GIF89a" + b"\x00" * 20,
        b"%PDF-1.7",
    ],
)
def test_garbage_is_rejected(blob: bytes) -> None:
    _reject(blob)


def test_truncated_png_and_jpeg_are_rejected() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(arr).save(buffer, format=fmt)
        data = buffer.getvalue()
        for offset in (40, len(data) // 3, len(data) // 2):
            assert _reject(data[:offset]).code in ("decode_error", "corrupt_header")


def _png_bomb(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def _peak(func) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = func()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _reject_peak(data: bytes, limits: Limits = NO_OCR) -> tuple[Rejected, int]:
    def attempt() -> Rejected:
        try:
            _run(data, limits)
        except Rejected as rejected:
            return rejected
        raise AssertionError("not rejected")

    rejected, peak = _peak(attempt)
    assert isinstance(rejected, Rejected)
    return rejected, peak


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (50_000, 1_001), (2**31 - 1, 2)])
def test_png_decompression_bomb_rejected_without_large_allocation(width: int, height: int) -> None:
    data = _png_bomb(width, height)
    assert len(data) < 200
    rejected, peak = _reject_peak(data)
    assert rejected.code == "too_many_pixels"
    assert peak < 2 * 1024 * 1024


def test_jpeg_with_huge_declared_size_rejected_without_large_allocation() -> None:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)
    rejected, peak = _reject_peak(bytes(data))
    assert rejected.code == "too_many_pixels"
    assert peak < 2 * 1024 * 1024


def test_dicom_with_huge_declared_geometry_rejected_without_large_allocation() -> None:
    ds = phi_dataset()
    set_ct_pixels(ds, np.zeros((8, 8), dtype=np.int16))
    ds.Rows, ds.Columns = 65_535, 65_535
    ds.NumberOfFrames = "1000"
    rejected, peak = _reject_peak(to_bytes(ds))
    assert rejected.code == "too_many_pixels"
    assert peak < 4 * 1024 * 1024


def test_dicom_with_non_numeric_frame_count_rejected() -> None:
    ds = phi_dataset()
    set_ct_pixels(ds, np.zeros((8, 8), dtype=np.int16))
    ds.NumberOfFrames = "7"
    data = to_bytes(ds).replace(b"IS\x02\x007 ", b"IS\x02\x00x ")
    assert _reject(data).code in ("parse_error", "missing_attribute")


def test_dicom_with_too_many_frames_rejected() -> None:
    ds = phi_dataset()
    set_ct_pixels(ds, np.zeros((8, 8), dtype=np.int16))
    ds.NumberOfFrames = "5000"
    assert _reject(to_bytes(ds)).code == "too_many_frames"


def test_oversized_dicom_file_rejected_before_parsing() -> None:
    data = build_ct(frames=4)
    rejected, peak = _reject_peak(data, Limits(ocr_enabled=False, max_bytes=len(data) - 1))
    assert rejected.code == "too_large"
    assert peak < 64 * 1024


def test_surplus_pixel_bytes_are_trimmed() -> None:
    ds = phi_dataset()
    set_ct_pixels(ds, np.zeros((64, 64), dtype=np.int16))
    ds.PixelData = ds.PixelData + b"HIDDEN-TRAILER-PHI" * 10
    processed = _run(to_bytes(ds))
    assert b"HIDDEN-TRAILER-PHI" not in processed.cleaned
    assert len(pydicom.dcmread(io.BytesIO(processed.cleaned)).PixelData) == 64 * 64 * 2
