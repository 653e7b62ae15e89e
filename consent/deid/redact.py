"""Black out coordinator-chosen regions in a stored (already cleaned) image before release."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.pixels import pack_bits

from consent.deid import derivative, dicom_io, hashing, raster
from consent.deid.dicom_deid import add_clean_pixel_code
from consent.deid.errors import Rejected
from consent.deid.limits import Limits
from consent.deid.ocr import TextBox, redact_regions
from consent.deid.sniff import sniff


@dataclass(frozen=True, slots=True)
class Rederived:
    """Web derivative and hashes rebuilt from a stored image after redaction."""

    derivative: derivative.Derivative
    sha256: str
    phash: str


def redact_stored(data: bytes, boxes: Sequence[TextBox]) -> bytes:
    """Return ``data`` (a cleaned DICOM, PNG or JPEG) with every box blacked out in every frame.

    For DICOM the box is filled with the stored value that displays as black (the minimum for
    MONOCHROME2, the maximum for MONOCHROME1, zero for colour), Burned In Annotation becomes NO
    and the Clean Pixel Data Option (DCM 113101) is added to the de-identification methods.
    """
    kind = sniff(data)
    if kind == "dicom":
        return _redact_dicom(data, boxes)
    if kind in ("png", "jpeg"):
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            arr = np.asarray(image)
            mode = image.mode
        redacted = Image.fromarray(redact_regions(arr, list(boxes), fill=0), mode=mode)
        return raster.encode(redacted, "png" if kind == "png" else "jpeg")
    raise Rejected("Only a stored image can be redacted.", "unsupported_format")


def _redact_dicom(data: bytes, boxes: Sequence[TextBox]) -> bytes:
    ds = dcmread(io.BytesIO(data))
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "MONOCHROME1":
        fill = arr.max()
    elif photometric == "MONOCHROME2":
        fill = arr.min()
    else:
        fill = 0
    redacted = redact_regions(arr, list(boxes), fill=fill, multi_frame=frames > 1)
    if int(ds.BitsAllocated) == 1:
        ds.PixelData = pack_bits(redacted)
    else:
        ds.PixelData = np.ascontiguousarray(redacted, dtype=arr.dtype.newbyteorder("<")).tobytes()
    add_clean_pixel_code(ds)
    return dicom_io.write(ds)


def derive_stored(data: bytes, *, limits: Limits | None = None) -> Rederived:
    """Rebuild the web derivative, thumbnail and hashes of a stored (cleaned) image.

    Uses the same windowing and encoding as intake (the middle frame of a DICOM), so a
    redacted image looks exactly like one that arrived without text. ``sha256`` is over
    ``data``; ``phash`` over the display image.
    """
    limits = limits or Limits()
    kind = sniff(data)
    if kind == "dicom":
        ds = dicom_io.read(data, limits)
        middle = int(ds.get("NumberOfFrames", 1) or 1) // 2
        display = derivative.dicom_display(ds, dicom_io.frame(ds, middle), frame_index=middle)
    elif kind in ("png", "jpeg"):
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            display = derivative.raster_display(image)
    else:
        raise Rejected("Only a stored image can be re-derived.", "unsupported_format")
    return Rederived(
        derivative=derivative.make_derivative(display, thumbnail_px=limits.thumbnail_px),
        sha256=hashing.sha256_hex(data),
        phash=hashing.phash(display),
    )
