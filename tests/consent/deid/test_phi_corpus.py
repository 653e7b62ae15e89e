"""No fake PHI byte string survives anywhere in any output of the pipeline."""

from __future__ import annotations

import io
import re
import struct
import zlib

import pydicom
import pytest

from consent.deid import process
from tests.consent.deid.conftest import (
    DONOR,
    NO_OCR,
    SECRET,
    assert_no_phi,
    build_ct,
    build_jpeg,
    build_jpeg_sc,
    build_png,
)

DICOM_BUILDERS = {
    "ct_explicit": lambda: build_ct(),
    "ct_implicit": lambda: build_ct(implicit=True),
    "ct_rle": lambda: build_ct(rle=True),
    "sc_multiframe": lambda: build_ct(frames=5),
    "sc_jpeg_encapsulated": build_jpeg_sc,
}
RASTER_BUILDERS = {"jpeg": build_jpeg, "png": build_png}


def _outputs(processed) -> list[bytes]:
    blobs = [processed.cleaned, processed.derivative_png, processed.thumbnail_png]
    return blobs + ([processed.derivative_webp] if processed.derivative_webp else [])


@pytest.mark.parametrize("name", sorted(DICOM_BUILDERS))
def test_no_phi_survives_in_dicom_outputs(name: str) -> None:
    processed = process(
        DICOM_BUILDERS[name](), filename_hint=name, donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    for blob in _outputs(processed):
        assert_no_phi(blob)
    # The text form of the parsed output too (catches values pydicom would decode differently).
    ds = pydicom.dcmread(io.BytesIO(processed.cleaned))
    assert_no_phi(str(ds).encode("utf-8"))


@pytest.mark.parametrize("name", sorted(DICOM_BUILDERS))
def test_dicom_output_is_a_valid_deidentified_part10_file(name: str) -> None:
    processed = process(
        DICOM_BUILDERS[name](), filename_hint=name, donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    data = processed.cleaned
    assert data[:128] == b"\x00" * 128
    assert data[128:132] == b"DICM"
    ds = pydicom.dcmread(io.BytesIO(data), force=False)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == [
        "113100",
        "113107",
    ]
    assert {item.CodingSchemeDesignator for item in ds.DeidentificationMethodCodeSequence} == {
        "DCM"
    }
    assert str(ds.PatientName) == processed.donor_pseudonym
    assert ds.PatientID == processed.donor_pseudonym
    assert [elem.tag for elem in ds.iterall() if elem.tag.is_private] == []
    assert [elem.tag for elem in ds.iterall() if elem.tag.group & 0xFF00 in (0x5000, 0x6000)] == []
    assert "IconImageSequence" not in ds
    assert "PatientAge" not in ds and ds.PatientBirthDate == "" and ds.PatientSex == ""
    assert ds.AccessionNumber == "" and ds.ReferringPhysicianName == ""
    assert "InstitutionName" not in ds and "StudyDescription" not in ds
    assert "ImageComments" not in ds and "OperatorsName" not in ds
    # The nested structure survives where the profile keeps it, with its UIDs replaced.
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")
    frames = int(ds.get("NumberOfFrames", 1))
    samples = int(ds.SamplesPerPixel)
    expected = (frames,) if frames > 1 else ()
    assert ds.pixel_array.shape == expected + (64, 64) + ((3,) if samples == 3 else ())
    assert ds.PhotometricInterpretation in ("MONOCHROME2", "RGB")


@pytest.mark.parametrize("name", sorted(RASTER_BUILDERS))
def test_no_phi_survives_in_raster_outputs(name: str) -> None:
    processed = process(
        RASTER_BUILDERS[name](), filename_hint=name, donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    for blob in _outputs(processed):
        assert_no_phi(blob)


def _png_chunks(data: bytes) -> list[str]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos + 4 : pos + 8].decode("ascii"))
        pos += 12 + length
    return chunks


def _jpeg_markers(data: bytes) -> list[int]:
    markers, pos = [], 2
    while pos < len(data):
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return markers


def test_png_output_has_only_critical_chunks() -> None:
    processed = process(
        build_png(), filename_hint="x.png", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    chunks = _png_chunks(processed.cleaned)
    assert chunks[0] == "IHDR" and chunks[-1] == "IEND"
    assert set(chunks) == {"IHDR", "IDAT", "IEND"}
    # zTXt content is compressed in the input: check every IDAT decompresses to pixels only.
    assert b"PNG-ZTXT-PHI" not in zlib.decompress(
        b"".join(
            processed.cleaned[
                m.start() + 4 : m.start()
                + 4
                + struct.unpack(">I", processed.cleaned[m.start() - 4 : m.start()])[0]
            ]
            for m in re.finditer(b"IDAT", processed.cleaned)
        )
    )


def test_jpeg_output_has_no_app_or_comment_segments() -> None:
    processed = process(
        build_jpeg(), filename_hint="x.jpg", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    markers = _jpeg_markers(processed.cleaned)
    assert [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE] == []
    assert markers[0] == 0xE0  # JFIF APP0 only
    assert processed.flags[:1] == ("icc_converted",)
    assert b"acsp" not in processed.cleaned  # no ICC profile left


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (96, 64)), (6, (64, 96)), (8, (64, 96)), (3, (96, 64))]
)
def test_exif_orientation_is_applied_before_metadata_is_dropped(
    orientation: int, size: tuple[int, int]
) -> None:
    from PIL import Image

    processed = process(
        build_jpeg(orientation),
        filename_hint="x.jpg",
        donor_key=DONOR,
        secret=SECRET,
        limits=NO_OCR,
    )
    with Image.open(io.BytesIO(processed.cleaned)) as image:
        assert image.size == size
        assert image.getexif() == {}
    assert (processed.width, processed.height) == size
