"""Burned-in text flags and OCR, redaction, windowing, derivatives, hashes and QC flags."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont

from consent.deid import (
    Limits,
    TextBox,
    derivative,
    hashing,
    process,
    quality,
    redact_regions,
    redact_stored,
)
from consent.deid.ocr import detect_text
from tests.consent.deid.conftest import (
    DONOR,
    NO_OCR,
    SECRET,
    build_ct,
    build_jpeg_sc,
    ct_pixels,
    phi_dataset,
    set_ct_pixels,
    to_bytes,
)

OCR = Limits(ocr_timeout_s=60.0)


def _text_image(text: str = "DOE JOHN 1971") -> np.ndarray:
    image = Image.new("L", (512, 512), 0)
    draw = ImageDraw.Draw(image)
    draw.ellipse((100, 100, 420, 420), fill=90)
    draw.text((20, 20), text, fill=255, font=ImageFont.load_default(size=36))
    return np.asarray(image)


def _png(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


def test_text_in_pixels_is_detected_and_boxed() -> None:
    processed = process(
        _png(_text_image()), filename_hint="t.png", donor_key=DONOR, secret=SECRET, limits=OCR
    )
    assert "text_detected" in processed.flags
    assert processed.needs_review is True
    assert len(processed.text_boxes) >= 2
    for box in processed.text_boxes:
        assert 10 <= box.top <= 80 and box.left >= 10 and box.height < 60
    assert not hasattr(processed.text_boxes[0], "text")  # recognised text is never kept


def test_redacted_image_has_no_text_left() -> None:
    arr = _text_image()
    boxes = detect_text(arr, timeout_s=60.0).boxes
    assert len(boxes) >= 2
    cleaned = redact_regions(arr, boxes)
    assert detect_text(cleaned, timeout_s=60.0).boxes == ()
    assert cleaned[250, 250] == 90  # the rest is untouched


def test_plain_image_has_no_text_flag() -> None:
    arr = _text_image("")
    processed = process(
        _png(arr), filename_hint="p.png", donor_key=DONOR, secret=SECRET, limits=OCR
    )
    assert processed.text_boxes == ()
    assert processed.needs_review is False


def test_missing_tesseract_degrades_to_a_review_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_TESSERACT", "/nonexistent/tesseract")
    processed = process(
        _png(_text_image()), filename_hint="t.png", donor_key=DONOR, secret=SECRET, limits=OCR
    )
    assert "ocr_unavailable" in processed.flags
    assert processed.needs_review is True
    assert processed.ocr_detail == "OCR unavailable: tesseract not found"


@pytest.mark.parametrize(
    ("modality", "sop_class", "burned_in", "flag"),
    [
        ("CT", "1.2.840.10008.5.1.4.1.1.2", "YES", "burned_in_declared"),
        ("US", "1.2.840.10008.5.1.4.1.1.6.1", None, "burned_in_unknown"),
        ("OT", "1.2.840.10008.5.1.4.1.1.7", None, "burned_in_unknown"),
        ("CT", "1.2.840.10008.5.1.4.1.1.2", None, None),
        ("US", "1.2.840.10008.5.1.4.1.1.6.1", "NO", None),
    ],
)
def test_burned_in_annotation_flags(
    modality: str, sop_class: str, burned_in: str | None, flag: str | None
) -> None:
    ds = phi_dataset(sop_class=sop_class, modality=modality)
    set_ct_pixels(ds, ct_pixels())
    del ds.BurnedInAnnotation
    if burned_in:
        ds.BurnedInAnnotation = burned_in
    processed = process(
        to_bytes(ds), filename_hint="x", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    burned = [f for f in processed.flags if f.startswith("burned_in")]
    assert burned == ([flag] if flag else [])
    assert processed.needs_review is (flag is not None)


def test_screen_capture_jpeg_sc_is_flagged_and_converted_to_rgb() -> None:
    processed = process(
        build_jpeg_sc(), filename_hint="x", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    assert "burned_in_unknown" in processed.flags
    ds = pydicom.dcmread(io.BytesIO(processed.cleaned))
    assert ds.PhotometricInterpretation == "RGB"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


def test_redact_stored_dicom_blacks_out_every_frame_and_records_clean_pixel_option() -> None:
    processed = process(
        build_ct(frames=3), filename_hint="x", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    box = TextBox(left=0, top=0, width=10, height=5, confidence=99.0, characters=4)
    redacted = pydicom.dcmread(io.BytesIO(redact_stored(processed.cleaned, [box])))
    arr = redacted.pixel_array
    original = pydicom.dcmread(io.BytesIO(processed.cleaned)).pixel_array
    assert arr.shape == (3, 64, 64)
    assert (arr[:, :5, :10] == original.min()).all()
    assert (arr[:, 5:, :] == original[:, 5:, :]).all()
    assert redacted.BurnedInAnnotation == "NO"
    assert [i.CodeValue for i in redacted.DeidentificationMethodCodeSequence] == [
        "113100",
        "113107",
        "113101",
    ]


def test_redact_regions_clips_boxes_to_the_frame() -> None:
    arr = np.ones((4, 6, 3), dtype=np.uint8)
    out = redact_regions(arr, [TextBox(4, 2, 10, 10, 90.0, 2), TextBox(-3, -3, 4, 4, 90.0, 2)])
    expected = np.ones((4, 6, 3), dtype=np.uint8)
    expected[2:, 4:] = 0
    expected[:1, :1] = 0
    assert (out == expected).all()
    assert (arr == 1).all()


def test_window_follows_the_dicom_linear_formula() -> None:
    values = np.array([[-1000.0, -160.0, 40.0, 240.0, 3000.0]])
    assert derivative.window(values, 40.0, 400.0).tolist() == [[0, 0, 127, 255, 255]]


def test_ct_without_window_uses_the_soft_tissue_preset_and_monochrome1_is_inverted() -> None:
    ds = phi_dataset()
    set_ct_pixels(ds, ct_pixels())
    pixels = ct_pixels()
    display = derivative.dicom_display(ds, pixels)
    assert (display[pixels == -1000] == 0).all()
    assert (display[pixels == 1000] == 255).all()
    assert (display[pixels == 40] == 127).all()
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert (derivative.dicom_display(ds, pixels) == 255 - display).all()


def test_stored_window_wins_over_the_preset() -> None:
    ds = phi_dataset()
    set_ct_pixels(ds, ct_pixels())
    ds.WindowCenter, ds.WindowWidth = "1000", "2"
    display = derivative.dicom_display(ds, ct_pixels())
    assert sorted(np.unique(display).tolist()) == [0, 255]


def test_multiframe_derivative_uses_the_middle_frame_and_reports_frames() -> None:
    processed = process(
        build_ct(frames=5), filename_hint="x", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    assert processed.frames == 5
    assert (processed.width, processed.height) == (64, 64)
    with Image.open(io.BytesIO(processed.derivative_png)) as image:
        assert image.size == (64, 64) and image.mode == "L"
    assert processed.derivative_webp is None or processed.derivative_webp[8:12] == b"WEBP"


def test_thumbnail_long_side_is_bounded() -> None:
    arr = np.tile(np.arange(600, dtype=np.uint16) % 256, (300, 1)).astype(np.uint8)
    processed = process(_png(arr), filename_hint="x", donor_key=DONOR, secret=SECRET, limits=NO_OCR)
    with Image.open(io.BytesIO(processed.thumbnail_png)) as thumb:
        assert thumb.size == (256, 128)


def test_hashes_exact_and_near_duplicates() -> None:
    base = _text_image("")
    brighter = np.clip(base.astype(int) + 12, 0, 255).astype(np.uint8)
    other = np.rot90(_text_image("X")).copy()
    assert hashing.hamming(hashing.phash(base), hashing.phash(base)) == 0
    assert hashing.is_near_duplicate(hashing.phash(base), hashing.phash(brighter))
    assert hashing.is_near_duplicate(hashing.dhash(base), hashing.dhash(brighter))
    assert not hashing.is_near_duplicate(hashing.phash(base), hashing.phash(other))
    assert hashing.hamming("ffffffffffffffff", "0000000000000000") == 64
    assert hashing.hamming("0f", "01") == 3
    with pytest.raises(ValueError, match="same length"):
        hashing.hamming("ff", "fff")
    assert (
        hashing.sha256_hex(b"")
        == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize(
    ("arr", "flags"),
    [
        (np.full((100, 100), 128, dtype=np.uint8), ("blank",)),
        (np.full((10, 100), 128, dtype=np.uint8), ("too_small", "blank")),
        ((np.indices((100, 100))[0] % 2 * 20).astype(np.uint8), ("too_dark",)),
        ((235 + np.indices((100, 100))[0] % 2 * 20).astype(np.uint8), ("too_bright",)),
        ((np.indices((100, 100))[0] * 2).astype(np.uint8), ()),
    ],
)
def test_quality_flags(arr: np.ndarray, flags: tuple[str, ...]) -> None:
    assert quality.quality_flags(arr, min_side=64) == flags
