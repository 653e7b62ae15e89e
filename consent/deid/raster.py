"""PNG and JPEG: decode under limits, apply EXIF orientation, re-encode with no metadata at all.

Decisions (documented in docs/benchmarks.md and the report):

* The output is built from the decoded pixels into a *new* image whose ``info`` is empty, so no
  block of the input can be carried over by the encoder (EXIF, GPS, XMP, IPTC, ICC, JPEG COM and
  APPn, PNG tEXt/iTXt/zTXt/eXIf/tIME and every other ancillary chunk).
* ICC profiles: an embedded profile is *converted to sRGB* with LittleCMS and then dropped, so
  colours stay right and the profile's own text (device, creator, description) cannot leak.
  If the conversion fails the profile is dropped anyway and the image flagged ``icc_dropped``.
* Transparency is flattened onto black (alpha can hide pixels that still hold content); palette,
  CMYK and 1-bit images become RGB or L. 16-bit grey PNGs stay 16-bit.
* PNG stays PNG (lossless). JPEG is re-encoded as JPEG at quality 95 with 4:4:4 sampling: one
  extra generation of loss, invisible at that quality, and the only way to rotate and drop APPn.
* Only the first frame of animated PNG or multi-picture JPEG (MPO) is kept.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from PIL import Image, ImageOps

from consent.deid.errors import Rejected
from consent.deid.limits import Limits
from consent.deid.sniff import jpeg_dimensions, png_dimensions

logger = logging.getLogger(__name__)

RasterKind = Literal["png", "jpeg"]
JPEG_QUALITY: Final = 95
_PIL_FORMAT: Final[dict[str, str]] = {"png": "PNG", "jpeg": "JPEG"}


@dataclass(frozen=True, slots=True)
class CleanRaster:
    """A decoded, oriented, metadata-free image and its re-encoded bytes."""

    image: Image.Image
    data: bytes
    flags: tuple[str, ...]


def clean(data: bytes, kind: RasterKind, limits: Limits) -> CleanRaster:
    """Decode ``data`` (already sniffed as ``kind``) and re-encode it without metadata.

    Raises
    ------
    Rejected
        On size limits (checked on the header before decoding) or any decoder error.
    """
    if len(data) > limits.max_bytes:
        raise Rejected(
            f"The file is {len(data)} bytes; the limit is {limits.max_bytes} bytes.", "too_large"
        )
    width, height = png_dimensions(data) if kind == "png" else jpeg_dimensions(data)
    if width * height > limits.max_frame_pixels:
        raise Rejected(
            f"The image declares {width}x{height} pixels, above the limit of "
            f"{limits.max_frame_pixels} pixels.",
            "too_many_pixels",
        )
    flags: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[kind]]) as opened:
                if opened.size != (width, height):
                    raise Rejected("The image header is inconsistent.", "corrupt_header")
                opened.seek(0)
                opened.load()
                icc = opened.info.get("icc_profile")
                oriented = ImageOps.exif_transpose(opened)
                image = _normalise_mode(oriented)
    except Rejected:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many exception types on bad input
        logger.info("image decode failed: %s", type(exc).__name__)
        raise Rejected(
            "The image could not be decoded; it may be truncated or corrupt.", "decode_error"
        ) from exc
    if icc:
        image, converted = _to_srgb(image, icc)
        flags.append("icc_converted" if converted else "icc_dropped")
    fresh = _fresh(image)
    return CleanRaster(image=fresh, data=encode(fresh, kind), flags=tuple(flags))


def encode(image: Image.Image, kind: RasterKind) -> bytes:
    """Encode with no metadata: callers pass an image whose ``info`` is empty."""
    buffer = io.BytesIO()
    if kind == "png":
        image.save(buffer, format="PNG", optimize=False, compress_level=6)
    else:
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    return buffer.getvalue()


def _normalise_mode(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("L", "RGB", "I;16"):
        return image
    if mode in ("I;16B", "I;16L", "I"):
        arr = np.asarray(image)
        if arr.dtype != np.uint16:
            arr = np.clip(arr, 0, 65535).astype(np.uint16)
        return Image.fromarray(arr)
    if mode == "1":
        return image.convert("L")
    if mode in ("LA", "RGBA", "PA", "P", "La", "RGBa"):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        flat = Image.alpha_composite(black, rgba).convert("RGB")
        return flat.convert("L") if mode in ("LA", "La") else flat
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _to_srgb(image: Image.Image, icc: bytes) -> tuple[Image.Image, bool]:
    if image.mode not in ("RGB", "L"):
        return image, False
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        out_mode = image.mode
        converted = ImageCms.profileToProfile(image, source, target, outputMode=out_mode)
    except Exception as exc:  # noqa: BLE001 - bad profiles raise PyCMSError, OSError, ...
        logger.info("ICC conversion failed, profile dropped: %s", type(exc).__name__)
        return image, False
    if converted is None:
        return image, False
    return converted, True


def _fresh(image: Image.Image) -> Image.Image:
    """A copy that shares nothing with the decoder: pixels only, empty ``info``."""
    fresh = Image.frombytes(image.mode, image.size, image.tobytes())
    fresh.info = {}
    return fresh
