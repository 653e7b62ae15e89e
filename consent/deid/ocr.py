"""Burned-in text: detection with the Tesseract binary, and redaction of chosen regions.

Tesseract is called as a subprocess (``tesseract stdin stdout ... tsv``) with a timeout and a
single OpenMP thread, so a stuck or slow OCR never blocks a worker, and a missing binary only
produces the ``ocr_unavailable`` flag. pytesseract would add a dependency for the same call.

Detected boxes carry position, size and confidence but *not the recognised text*: burned-in text
is typically the patient's name or ID, and storing it next to the image would copy PHI back in.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

TESSERACT_ENV: Final = "TESSERA_TESSERACT"
#: Minimum Tesseract word confidence (0..100) for a detection to count.
MIN_CONFIDENCE: Final = 60.0
#: Minimum number of letters or digits in a word for it to count (drops speckle "words").
MIN_ALNUM: Final = 2
#: Images whose long side is below this are upscaled x2: Tesseract wants glyphs >= ~20 px.
UPSCALE_BELOW: Final = 1024


@dataclass(frozen=True, slots=True)
class TextBox:
    """A region of likely text, in pixel coordinates of the frame (origin top-left)."""

    left: int
    top: int
    width: int
    height: int
    confidence: float
    characters: int


@dataclass(frozen=True, slots=True)
class OcrResult:
    """Boxes found, or ``available=False`` when OCR could not run (the file then needs review)."""

    available: bool
    boxes: tuple[TextBox, ...]
    detail: str = ""


def tesseract_path() -> str | None:
    """The Tesseract binary: ``$TESSERA_TESSERACT`` if set, else the one on ``PATH``."""
    configured = os.environ.get(TESSERACT_ENV)
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
    return shutil.which("tesseract")


def detect_text(display: np.ndarray, *, timeout_s: float) -> OcrResult:
    """Find words in an 8-bit image.

    Parameters
    ----------
    display
        ``uint8`` image, shape ``(H, W)`` or ``(H, W, 3)``.
    timeout_s
        Wall-clock limit for the Tesseract process.
    """
    binary = tesseract_path()
    if binary is None:
        return OcrResult(available=False, boxes=(), detail="OCR unavailable: tesseract not found")
    image = Image.fromarray(display).convert("L")
    scale = 2 if max(image.size) < UPSCALE_BELOW else 1
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell, binary found above
            [binary, "stdin", "stdout", "--psm", "11", "-l", "eng", "tsv"],
            input=buffer.getvalue(),
            capture_output=True,
            timeout=timeout_s,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return OcrResult(available=False, boxes=(), detail="OCR unavailable: timed out")
    except OSError as exc:
        logger.warning("tesseract could not start: %s", exc)
        return OcrResult(available=False, boxes=(), detail="OCR unavailable: could not start")
    if completed.returncode != 0:
        logger.warning("tesseract exited with %d", completed.returncode)
        return OcrResult(available=False, boxes=(), detail="OCR unavailable: tesseract failed")
    return OcrResult(available=True, boxes=_parse_tsv(completed.stdout, scale))


def _parse_tsv(stdout: bytes, scale: int) -> tuple[TextBox, ...]:
    boxes: list[TextBox] = []
    reader = csv.DictReader(
        io.StringIO(stdout.decode("utf-8", "replace")), delimiter="\t", quoting=csv.QUOTE_NONE
    )
    for row in reader:
        try:
            confidence = float(row.get("conf") or -1)
            text = (row.get("text") or "").strip()
            if confidence < MIN_CONFIDENCE or sum(ch.isalnum() for ch in text) < MIN_ALNUM:
                continue
            left, top, width, height = (int(row[key]) for key in ("left", "top", "width", "height"))
        except (TypeError, ValueError, KeyError):
            continue
        boxes.append(
            TextBox(
                left=left // scale,
                top=top // scale,
                width=-(-width // scale),
                height=-(-height // scale),
                confidence=confidence,
                characters=len(text),
            )
        )
    return tuple(boxes)


def redact_regions(
    pixels: np.ndarray,
    boxes: tuple[TextBox, ...] | list[TextBox],
    *,
    fill: float | int = 0,
    multi_frame: bool = False,
) -> np.ndarray:
    """A copy of ``pixels`` with every box filled with ``fill``.

    Parameters
    ----------
    pixels
        One frame, shape ``(H, W)`` or ``(H, W, C)``; with ``multi_frame=True`` a stack,
        shape ``(F, H, W)`` or ``(F, H, W, C)``, redacted in every frame.
    boxes
        Regions in frame coordinates; parts outside the frame are ignored.
    fill
        Value written into the boxes (e.g. the value that displays as black).
    multi_frame
        Whether the first axis of ``pixels`` is the frame axis.
    """
    out = np.array(pixels, copy=True)
    frame_axes = (1, 2) if multi_frame else (0, 1)
    height, width = out.shape[frame_axes[0]], out.shape[frame_axes[1]]
    for box in boxes:
        top, left = max(box.top, 0), max(box.left, 0)
        bottom, right = min(box.top + box.height, height), min(box.left + box.width, width)
        if bottom <= top or right <= left:
            continue
        if multi_frame:
            out[:, top:bottom, left:right, ...] = fill
        else:
            out[top:bottom, left:right, ...] = fill
    return out
