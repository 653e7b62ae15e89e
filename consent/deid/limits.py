"""Hard limits checked before any decoding; one frozen dataclass so callers can tune them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits for one upload.

    Every size is checked against what the file *declares* before a decoder runs, and again
    against what a decoder produces, so a small file cannot expand into a large allocation.
    """

    #: Largest accepted file (or zip member), in bytes.
    max_bytes: int = 256 * 1024 * 1024
    #: Largest single frame, in pixels (rows x columns). 50 M covers mammography and 48 MP photos.
    max_frame_pixels: int = 50_000_000
    #: Largest total over all frames of a DICOM object, in pixels.
    max_total_pixels: int = 200_000_000
    #: Most frames in a multi-frame DICOM object.
    max_frames: int = 2_000
    #: Smallest side, in pixels, below which an image is flagged ``too_small`` (not rejected).
    min_side: int = 64
    #: Zip: most members, largest total of uncompressed bytes, largest compression ratio.
    max_zip_members: int = 2_000
    max_zip_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_zip_ratio: int = 200
    #: OCR for burned-in text: on/off and the wall-clock limit for one Tesseract call.
    ocr_enabled: bool = True
    ocr_timeout_s: float = 30.0
    #: Long side of the thumbnail, in pixels.
    thumbnail_px: int = 256
