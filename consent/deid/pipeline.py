"""The intake pipeline: one upload in, a cleaned image and its web derivatives out.

``process`` is the single entry point for one file; ``process_upload`` also unpacks zips.
Both are pure (bytes in, frozen dataclasses out), so the Celery task, the offline
``deidentify`` command and the tests all run exactly the same code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
from pydicom.dataset import Dataset

from consent.deid import archive, derivative, dicom_io, hashing, keys, quality, raster
from consent.deid.dicom_deid import DeidContext, deidentify_dataset
from consent.deid.errors import Rejected
from consent.deid.limits import Limits
from consent.deid.ocr import TextBox, detect_text
from consent.deid.sniff import sniff

logger = logging.getLogger(__name__)

ImageKind = Literal["dicom", "png", "jpeg"]

#: Flags that send an image to the review quarantine instead of straight into a game.
REVIEW_FLAGS: Final = frozenset(
    {
        "burned_in_declared",
        "burned_in_unknown",
        "text_detected",
        "ocr_unavailable",
        "recognizable_features",
    }
)
MEDIA_TYPES: Final[dict[str, tuple[str, str]]] = {
    "dicom": ("application/dicom", ".dcm"),
    "png": ("image/png", ".png"),
    "jpeg": ("image/jpeg", ".jpg"),
}
#: Conversion Type values of screen or workstation captures (PS3.3 C.8.6.1).
_SCREEN_CAPTURE_CONVERSIONS: Final = frozenset({"WSD", "SD", "SI", "DRW", "SYN"})


@dataclass(frozen=True, slots=True)
class Processed:
    """A de-identified image ready to be stored, with everything the platform needs about it.

    ``cleaned`` is the only full-resolution copy kept (original bytes are never stored);
    ``sha256`` is over ``cleaned``; ``phash``/``dhash`` are over the display derivative.
    """

    kind: ImageKind
    cleaned: bytes
    media_type: str
    extension: str
    derivative_png: bytes
    derivative_webp: bytes | None
    thumbnail_png: bytes
    width: int
    height: int
    frames: int
    sha256: str
    phash: str
    dhash: str
    flags: tuple[str, ...]
    text_boxes: tuple[TextBox, ...]
    donor_pseudonym: str
    modality: str | None = None
    sop_class_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    ocr_detail: str = ""

    @property
    def needs_review(self) -> bool:
        """True when a flag sends the image to the burned-in-text review quarantine."""
        return any(flag in REVIEW_FLAGS for flag in self.flags)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result for one file of an upload (a zip gives one per member)."""

    name: str
    processed: Processed | None = None
    rejected: Rejected | None = field(default=None)


def process(
    data: bytes,
    *,
    filename_hint: str,
    donor_key: str,
    secret: bytes,
    limits: Limits | None = None,
) -> Processed:
    """De-identify one uploaded file and build its derivatives.

    Parameters
    ----------
    data
        The uploaded bytes; the kind is sniffed from them, never from ``filename_hint``.
    filename_hint
        Used in log messages only.
    donor_key
        The donor's pseudonymous id: keys UIDs, the date shift and the pseudonym per donor.
    secret
        Per-deployment secret for the keyed hashes (never stored with the images).
    limits
        Hard limits; defaults to :class:`Limits`.

    Raises
    ------
    Rejected
        For every file that is not accepted, with a reason for the uploader. No other
        exception escapes: an unexpected error is logged and becomes ``processing_error``.
    """
    limits = limits or Limits()
    try:
        kind = sniff(data)
        if kind == "zip":
            raise Rejected("A zip archive must be unpacked first (use process_upload).", "archive")
        if kind == "dicom":
            return _process_dicom(data, donor_key=donor_key, secret=secret, limits=limits)
        return _process_raster(data, kind, donor_key=donor_key, secret=secret, limits=limits)
    except Rejected as rejected:
        logger.info("rejected %r: %s", filename_hint, rejected.code)
        raise
    except Exception as exc:  # noqa: BLE001 - the worker must survive any input
        logger.exception("unexpected error while processing %r", filename_hint)
        raise Rejected(
            "The file could not be processed because of an unexpected error.", "processing_error"
        ) from exc


def process_upload(
    data: bytes,
    *,
    filename_hint: str,
    donor_key: str,
    secret: bytes,
    limits: Limits | None = None,
) -> list[Outcome]:
    """Like :func:`process`, but a zip yields one :class:`Outcome` per regular member."""
    limits = limits or Limits()
    try:
        is_zip = sniff(data) == "zip"
    except Rejected as rejected:
        return [Outcome(name=filename_hint, rejected=rejected)]
    if not is_zip:
        return [_outcome(filename_hint, data, donor_key, secret, limits)]
    outcomes: list[Outcome] = []
    try:
        for member in archive.iter_members(data, limits):
            if member.rejected is not None or member.data is None:
                outcomes.append(Outcome(name=member.name, rejected=member.rejected))
            else:
                outcomes.append(_outcome(member.name, member.data, donor_key, secret, limits))
    except Rejected as rejected:
        outcomes.append(Outcome(name=filename_hint, rejected=rejected))
    if not outcomes:
        outcomes.append(
            Outcome(
                name=filename_hint,
                rejected=Rejected("The archive contains no files.", "zip_empty"),
            )
        )
    return outcomes


def _outcome(name: str, data: bytes, donor_key: str, secret: bytes, limits: Limits) -> Outcome:
    try:
        return Outcome(
            name=name,
            processed=process(
                data, filename_hint=name, donor_key=donor_key, secret=secret, limits=limits
            ),
        )
    except Rejected as rejected:
        return Outcome(name=name, rejected=rejected)


def _process_dicom(data: bytes, *, donor_key: str, secret: bytes, limits: Limits) -> Processed:
    ds = dicom_io.read(data, limits)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    middle = frames // 2
    pixels = dicom_io.frame(ds, middle)
    flags = list(_burned_in_flags(ds))
    ctx = DeidContext.for_donor(
        secret=secret, donor_key=donor_key, sop_class_uid=str(ds.SOPClassUID)
    )
    deidentify_dataset(ds, ctx)
    cleaned = dicom_io.write(ds)
    display = derivative.dicom_display(ds, pixels, frame_index=middle)
    modality = str(ds.get("Modality", "") or "") or None
    return _finish(
        kind="dicom",
        cleaned=cleaned,
        display=display,
        frames=frames,
        flags=flags,
        limits=limits,
        pseudonym=ctx.pseudonym,
        modality=modality,
        dataset=ds,
    )


def _process_raster(
    data: bytes, kind: ImageKind, *, donor_key: str, secret: bytes, limits: Limits
) -> Processed:
    cleaned = raster.clean(data, "png" if kind == "png" else "jpeg", limits)
    display = derivative.raster_display(cleaned.image)
    return _finish(
        kind=kind,
        cleaned=cleaned.data,
        display=display,
        frames=1,
        flags=list(cleaned.flags),
        limits=limits,
        pseudonym=keys.donor_pseudonym(secret=secret, donor_key=donor_key),
        modality=None,
        dataset=None,
    )


def _finish(
    *,
    kind: ImageKind,
    cleaned: bytes,
    display: np.ndarray,
    frames: int,
    flags: list[str],
    limits: Limits,
    pseudonym: str,
    modality: str | None,
    dataset: Dataset | None,
) -> Processed:
    web = derivative.make_derivative(display, thumbnail_px=limits.thumbnail_px)
    boxes: tuple[TextBox, ...] = ()
    ocr_detail = ""
    if limits.ocr_enabled:
        result = detect_text(display, timeout_s=limits.ocr_timeout_s)
        boxes = result.boxes
        ocr_detail = result.detail
        if not result.available:
            flags.append("ocr_unavailable")
        elif boxes:
            flags.append("text_detected")
    flags.extend(quality.quality_flags(display, min_side=limits.min_side))
    media_type, extension = MEDIA_TYPES[kind]
    return Processed(
        kind=kind,
        cleaned=cleaned,
        media_type=media_type,
        extension=extension,
        derivative_png=web.png,
        derivative_webp=web.webp,
        thumbnail_png=web.thumbnail_png,
        width=web.width,
        height=web.height,
        frames=frames,
        sha256=hashing.sha256_hex(cleaned),
        phash=hashing.phash(display),
        dhash=hashing.dhash(display),
        flags=tuple(dict.fromkeys(flags)),
        text_boxes=boxes,
        donor_pseudonym=pseudonym,
        modality=modality,
        sop_class_uid=str(dataset.SOPClassUID) if dataset is not None else None,
        study_instance_uid=_uid(dataset, "StudyInstanceUID"),
        series_instance_uid=_uid(dataset, "SeriesInstanceUID"),
        sop_instance_uid=_uid(dataset, "SOPInstanceUID"),
        ocr_detail=ocr_detail,
    )


def _uid(ds: Dataset | None, keyword: str) -> str | None:
    if ds is None:
        return None
    value = ds.get(keyword)
    return str(value) if value else None


def _burned_in_flags(ds: Dataset) -> tuple[str, ...]:
    flags: list[str] = []
    declared = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if declared == "YES":
        flags.append("burned_in_declared")
    elif not declared and _may_carry_text(ds):
        flags.append("burned_in_unknown")
    if str(ds.get("RecognizableVisualFeatures", "") or "").strip().upper() == "YES":
        flags.append("recognizable_features")
    return tuple(flags)


def _may_carry_text(ds: Dataset) -> bool:
    """Ultrasound, secondary and screen captures, and photographs often show text."""
    sop_class = str(ds.SOPClassUID)
    modality = str(ds.get("Modality", "") or "")
    conversion = str(ds.get("ConversionType", "") or "")
    return (
        modality in ("US", "XC", "OT")
        or sop_class in dicom_io.SECONDARY_CAPTURE_CLASSES
        or sop_class == "1.2.840.10008.5.1.4.1.1.77.1.4"
        or conversion in _SCREEN_CAPTURE_CONVERSIONS
    )
