"""Read a DICOM upload under hard limits, normalise its pixels, and write the cleaned file.

Order matters: the size limit is checked on the bytes, the geometry (rows, columns, frames,
bits) on the parsed header, the declared size against the actual Pixel Data length, and only
then does a decoder run. Everything pydicom (or a decoder plugin) may raise is turned into
:class:`~consent.deid.errors.Rejected`.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Final

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian

from consent.deid.errors import Rejected
from consent.deid.limits import Limits
from consent.deid.sniff import JPEG_SIGNATURE, jpeg_dimensions

logger = logging.getLogger(__name__)

#: Our implementation class UID (2.25 form derived from a fixed UUID) and version name.
IMPLEMENTATION_CLASS_UID: Final = "2.25.143197306418640476036315307931399617837"
IMPLEMENTATION_VERSION_NAME: Final = "TESSERA_DEID_1"

#: Accepted SOP classes: ``uid -> short label``. Anything else is rejected with its name.
ALLOWED_SOP_CLASSES: Final[dict[str, str]] = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR",
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX for presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX for processing",
    "1.2.840.10008.5.1.4.1.1.1.2": "MG for presentation",
    "1.2.840.10008.5.1.4.1.1.1.2.1": "MG for processing",
    "1.2.840.10008.5.1.4.1.1.6.1": "US",
    "1.2.840.10008.5.1.4.1.1.3.1": "US multi-frame",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame grayscale byte SC",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame grayscale word SC",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame true colour SC",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL photographic",
}
SECONDARY_CAPTURE_CLASSES: Final = frozenset(
    uid for uid, label in ALLOWED_SOP_CLASSES.items() if "SC" in label or "capture" in label
)
_ALLOWED_PHOTOMETRIC: Final = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR"}
)
_JPEG_FAMILY_PREFIX: Final = "1.2.840.10008.1.2.4."
_JPEG_2000_SYNTAXES: Final = frozenset(
    {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
     "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Geometry:
    """Declared image geometry, validated against :class:`Limits`."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int

    @property
    def expected_bytes(self) -> int:
        """Native Pixel Data length the header implies (before the even-length pad byte)."""
        pixels = self.rows * self.columns * self.frames * self.samples
        return (
            math.ceil(pixels / 8) if self.bits_allocated == 1 else pixels * self.bits_allocated // 8
        )


def read(data: bytes, limits: Limits) -> Dataset:
    """Parse, validate and normalise a DICOM Part 10 upload.

    Returns a data set whose Pixel Data is native (uncompressed) little endian, with YBR colour
    converted to RGB, and whose length matches the declared geometry exactly.

    Raises
    ------
    Rejected
        For anything outside the allow-list or the limits, and for every parser or decoder error.
    """
    if len(data) > limits.max_bytes:
        raise Rejected(
            f"The file is {len(data)} bytes; the limit is {limits.max_bytes} bytes.", "too_large"
        )
    ds = _parse(data)
    sop_class = _check_sop_class(ds)
    if "PixelData" not in ds:
        raise Rejected("The DICOM file contains no image (Pixel Data).", "no_pixel_data")
    syntax = _transfer_syntax(ds)
    geometry = _check_geometry(ds, limits)
    if syntax.is_compressed:
        _decompress(ds, syntax, geometry)
    else:
        _check_native_length(ds, geometry)
    if str(ds.PhotometricInterpretation).startswith("YBR"):
        _ybr_to_rgb(ds)
    logger.debug("read DICOM sop_class=%s frames=%d", sop_class, geometry.frames)
    return ds


def frame(ds: Dataset, index: int) -> np.ndarray:
    """One decoded frame, shape ``(rows, columns)`` or ``(rows, columns, samples)``."""
    try:
        return pixel_array(ds, index=index)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a rejection, not a crash
        raise Rejected("The image pixels could not be decoded.", "decode_error") from exc


def write(ds: Dataset) -> bytes:
    """Serialise as a DICOM Part 10 file: zeroed preamble, fresh file meta, Explicit VR LE."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    out = FileDataset(None, Dataset(ds), file_meta=meta, preamble=b"\x00" * 128)
    buffer = io.BytesIO()
    out.save_as(buffer, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


def _parse(data: bytes) -> Dataset:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(io.BytesIO(data), force=False)
            # Touch every element now so a truncated or malformed value fails here, inside
            # the guard, instead of later in the de-identifier.
            ds.walk(lambda _ds, _elem: None)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many unrelated exception types
        logger.info("DICOM parse failed: %s", type(exc).__name__)
        raise Rejected(
            "The DICOM file could not be read; it may be truncated or corrupt.", "parse_error"
        ) from exc
    return ds


def _check_sop_class(ds: Dataset) -> str:
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if not sop_class:
        raise Rejected("The DICOM file has no SOP Class UID.", "missing_attribute")
    if sop_class not in ALLOWED_SOP_CLASSES:
        name = UID(sop_class).name if UID(sop_class).is_valid else "an unknown class"
        raise Rejected(
            f"DICOM objects of type {name!r} are not accepted; accepted are CT, MR, CR, DX, "
            "MG, US, secondary capture and VL photographic images.",
            "sop_class_not_allowed",
        )
    if not ds.get("SOPInstanceUID"):
        raise Rejected("The DICOM file has no SOP Instance UID.", "missing_attribute")
    return sop_class


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    syntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    if not syntax or not syntax.is_transfer_syntax:
        raise Rejected("The DICOM file declares no valid transfer syntax.", "parse_error")
    if not syntax.is_little_endian:
        raise Rejected(
            "Big endian DICOM (a retired transfer syntax) is not accepted; please export the "
            "images as Explicit VR Little Endian.",
            "unsupported_transfer_syntax",
        )
    if syntax.is_compressed:
        try:
            available = get_decoder(syntax).is_available
        except (NotImplementedError, ValueError):
            available = False
        if not available:
            raise Rejected(
                f"The image is compressed as {syntax.name!r}, which this server cannot decode; "
                "please export it uncompressed.",
                "unsupported_transfer_syntax",
            )
    return syntax


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise Rejected(
            f"The DICOM attribute {keyword} is missing or not a number.", "missing_attribute"
        ) from exc


def _check_geometry(ds: Dataset, limits: Limits) -> Geometry:
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise Rejected("Floating-point pixel data is not accepted.", "unsupported_pixels")
    geometry = Geometry(
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        frames=_int(ds, "NumberOfFrames", 1),
        samples=_int(ds, "SamplesPerPixel"),
        bits_allocated=_int(ds, "BitsAllocated"),
    )
    photometric = str(ds.get("PhotometricInterpretation", "") or "")
    if photometric not in _ALLOWED_PHOTOMETRIC:
        raise Rejected(
            "The photometric interpretation of the image is not supported.", "unsupported_pixels"
        )
    if geometry.rows <= 0 or geometry.columns <= 0 or geometry.frames <= 0:
        raise Rejected("The DICOM header declares an empty image.", "corrupt_header")
    if geometry.samples not in (1, 3) or geometry.bits_allocated not in (1, 8, 16, 32):
        raise Rejected(
            "Only 1 or 3 samples per pixel at 1, 8, 16 or 32 bits are supported.",
            "unsupported_pixels",
        )
    if geometry.frames > limits.max_frames:
        raise Rejected(
            f"The image has {geometry.frames} frames; the limit is {limits.max_frames}.",
            "too_many_frames",
        )
    frame_pixels = geometry.rows * geometry.columns
    if frame_pixels > limits.max_frame_pixels:
        raise Rejected(
            f"A frame of {geometry.columns}x{geometry.rows} pixels exceeds the limit of "
            f"{limits.max_frame_pixels} pixels.",
            "too_many_pixels",
        )
    if frame_pixels * geometry.frames > limits.max_total_pixels:
        raise Rejected(
            f"The image has {frame_pixels * geometry.frames} pixels over all frames; the limit "
            f"is {limits.max_total_pixels}.",
            "too_many_pixels",
        )
    return geometry


def _check_native_length(ds: Dataset, geometry: Geometry) -> None:
    actual = len(ds.PixelData)
    expected = geometry.expected_bytes
    if actual < expected:
        raise Rejected(
            f"The pixel data holds {actual} bytes but the header declares {expected}; the file "
            "is truncated or its dimensions are wrong.",
            "dimension_mismatch",
        )
    if actual > expected + (expected % 2):
        # Bytes past the declared image are never shown but would be stored: drop them.
        logger.info("trimming %d surplus Pixel Data bytes", actual - expected)
        ds.PixelData = ds.PixelData[: expected + (expected % 2)]


def _decompress(ds: Dataset, syntax: UID, geometry: Geometry) -> None:
    try:
        fragments_frames = list(generate_frames(ds.PixelData, number_of_frames=geometry.frames))
    except Exception as exc:  # noqa: BLE001 - malformed encapsulation raises assorted errors
        raise Rejected("The compressed pixel data is malformed.", "decode_error") from exc
    if len(fragments_frames) != geometry.frames:
        raise Rejected(
            f"The file declares {geometry.frames} frames but contains {len(fragments_frames)}.",
            "dimension_mismatch",
        )
    if syntax.startswith(_JPEG_FAMILY_PREFIX) and syntax not in _JPEG_2000_SYNTAXES:
        # A JPEG stream carries its own size; check it before the decoder allocates for it.
        for encoded in fragments_frames:
            if encoded.startswith(JPEG_SIGNATURE) and jpeg_dimensions(encoded) != (
                geometry.columns,
                geometry.rows,
            ):
                raise Rejected(
                    "A compressed frame does not have the size the DICOM header declares.",
                    "dimension_mismatch",
                )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.decompress(generate_instance_uid=False, as_rgb=True)
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise assorted errors
        logger.info("DICOM decompression failed: %s", type(exc).__name__)
        raise Rejected("The compressed image could not be decoded.", "decode_error") from exc
    _check_native_length(ds, geometry)


def _ybr_to_rgb(ds: Dataset) -> None:
    try:
        arr = pixel_array(ds, as_rgb=True)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a rejection
        raise Rejected("The colour image could not be decoded.", "decode_error") from exc
    ds.set_pixel_data(arr, "RGB", int(ds.BitsStored), generate_instance_uid=False)
