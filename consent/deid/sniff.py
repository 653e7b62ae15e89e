"""Content sniffing by magic bytes and header-only size reading; never trusts a file name."""

from __future__ import annotations

import struct
from typing import Final, Literal

from consent.deid.errors import Rejected

Kind = Literal["dicom", "png", "jpeg", "zip"]

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE: Final = b"\xff\xd8\xff"
ZIP_SIGNATURES: Final = (b"PK\x03\x04", b"PK\x05\x06")
DICOM_MAGIC_OFFSET: Final = 128

# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
# JPEG-LS's SOF55 (F7, ITU-T T.87) has the same layout.
_SOF_MARKERS: Final = (frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {0xF7}
# Markers without a length field.
_STANDALONE_MARKERS: Final = frozenset({0x01, *range(0xD0, 0xD8)})


def sniff(data: bytes) -> Kind:
    """Return the container kind from the leading bytes.

    Raises
    ------
    Rejected
        ``empty_file`` or ``unsupported_format`` when the bytes are none of the allowed kinds.
    """
    if not data:
        raise Rejected("The file is empty.", "empty_file")
    if data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM":
        return "dicom"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    if data.startswith(ZIP_SIGNATURES):
        return "zip"
    raise Rejected(
        "The file is not a DICOM (Part 10), PNG, JPEG or zip file; only those are accepted.",
        "unsupported_format",
    )


def png_dimensions(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG IHDR chunk, which the format requires to come first."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise Rejected("The PNG file has no valid header (IHDR chunk).", "corrupt_header")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise Rejected("The PNG header declares an empty image.", "corrupt_header")
    return width, height


def jpeg_dimensions(data: bytes) -> tuple[int, int]:
    """Width and height from the first JPEG start-of-frame segment, walking segment lengths."""
    pos = 2
    end = len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise Rejected("The JPEG file has a corrupt segment structure.", "corrupt_header")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            raise Rejected("The JPEG file has a corrupt segment length.", "corrupt_header")
        if marker in _SOF_MARKERS:
            if pos + 9 > end:
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            if width == 0 or height == 0:
                # Height 0 (defined later by DNL) is legal but rare; refuse rather than guess.
                raise Rejected("The JPEG header declares an empty image.", "corrupt_header")
            return width, height
        pos += 2 + length
    raise Rejected("The JPEG file has no frame header.", "corrupt_header")
