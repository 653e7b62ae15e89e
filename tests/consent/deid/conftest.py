"""Builders for a generated corpus: DICOM, JPEG and PNG files with fake PHI in many places."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from consent.deid import Limits

SECRET = b"test-deployment-secret"
DONOR = "donor-0001"
NO_OCR = Limits(ocr_enabled=False)

# Fake PHI. Every string must vanish from every output, in every encoding below.
PHI_NAME = "Doe^Johnathan"
PHI_STRINGS = (
    "Johnathan",
    "PID-8675309",
    "19710203",
    "20200315",
    "221B Baker Street",
    "555-0123-4567",
    "St Elsewhere Hospital",
    "House^Gregory",
    "ACC-424242",
    "Mother^Maiden",
    "MRN 8675309 private",
    "PRIVATE-PHI-SECRET",
    "ACME PHI CREATOR",
    "PREAMBLE-PHI",
    "FILEMETA-PHI",
    "NESTED-PHI-DEEP",
    "REQ-PHI-777",
    "OVERLAY-PHI",
    "CURVE-PHI",
    "ICON-PHI",
    "PADDING-PHI",
    "UNKNOWN-TAG-PHI",
    "Mueller-Straße",
    "SERIAL-PHI-99",
    "STATION-PHI",
    "EXIF-ARTIST-PHI",
    "EXIF-COMMENT-PHI",
    "XMP-CREATOR-PHI",
    "JPEG-COM-PHI",
    "IPTC-BYLINE-PHI",
    "PNG-TEXT-PHI",
    "PNG-ITXT-PHI",
    "PNG-ZTXT-PHI",
    "GPS-AREA-PHI",
    "ENCAPS-JPEG-PHI",
)
ORIGINAL_UIDS = (
    "1.2.826.0.1.3680043.8.498.11111111111111111",
    "1.2.826.0.1.3680043.8.498.22222222222222222",
    "1.2.826.0.1.3680043.8.498.33333333333333333",
    "1.2.826.0.1.3680043.8.498.44444444444444444",
    "1.2.826.0.1.3680043.8.498.55555555555555555",
)
STUDY_UID, SERIES_UID, SOP_UID, FOR_UID, REF_UID = ORIGINAL_UIDS


def encodings(text: str) -> list[bytes]:
    """The byte forms a string can take inside a file."""
    forms = {text.encode("utf-8"), text.encode("utf-16-le"), text.encode("utf-16-be")}
    forms.add(text.upper().encode("utf-8"))
    try:
        forms.add(text.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    return sorted(forms)


def assert_no_phi(blob: bytes, strings: tuple[str, ...] = PHI_STRINGS + ORIGINAL_UIDS) -> None:
    leaks = [(text, form) for text in strings for form in encodings(text) if form in blob]
    assert leaks == []


def ct_pixels(rows: int = 64, columns: int = 64, frames: int = 1) -> np.ndarray:
    """Signed 16-bit CT-like values: air around a water disc with a bone ring."""
    yy, xx = np.mgrid[0:rows, 0:columns]
    radius = np.hypot(yy - rows / 2, xx - columns / 2)
    frame = np.full((rows, columns), -1000, dtype=np.int16)
    frame[radius < rows * 0.4] = 40
    frame[(radius >= rows * 0.35) & (radius < rows * 0.4)] = 1000
    if frames == 1:
        return frame
    return np.stack([frame + 10 * index for index in range(frames)]).astype(np.int16)


def _person_item() -> Dataset:
    item = Dataset()
    item.PatientID = "PID-8675309"
    item.IssuerOfPatientID = "St Elsewhere Hospital"
    return item


def phi_dataset(
    *,
    sop_class: str = CTImageStorage,
    modality: str = "CT",
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> FileDataset:
    """A CT-like data set with PHI in names, IDs, dates, free text, sequences and private tags."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = SOP_UID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    meta.ImplementationVersionName = "FILEMETA-PHI"
    meta.SourceApplicationEntityTitle = "FILEMETA-PHI"
    preamble = b"PREAMBLE-PHI Doe^Johnathan ".ljust(128, b"#")
    ds = FileDataset(None, Dataset(), file_meta=meta, preamble=preamble)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = SOP_UID
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = FOR_UID
    ds.Modality = modality
    ds.Manufacturer = "ACME"
    ds.PatientName = PHI_NAME
    ds.PatientID = "PID-8675309"
    ds.PatientBirthDate = "19710203"
    ds.PatientSex = "M"
    ds.PatientAge = "049Y"
    ds.PatientAddress = "221B Baker Street"
    ds.PatientTelephoneNumbers = "555-0123-4567"
    ds.PatientMotherBirthName = "Mother^Maiden"
    ds.OtherPatientNames = "Mueller-Straße^Johnathan"
    ds.PatientComments = "MRN 8675309 private"
    ds.AdditionalPatientHistory = "Johnathan fell off a ladder"
    ds.InstitutionName = "St Elsewhere Hospital"
    ds.InstitutionAddress = "221B Baker Street"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.PerformingPhysicianName = "House^Gregory"
    ds.OperatorsName = "House^Gregory"
    ds.StationName = "STATION-PHI"
    ds.DeviceSerialNumber = "SERIAL-PHI-99"
    ds.AccessionNumber = "ACC-424242"
    ds.StudyID = "ACC-424242"
    ds.StudyDescription = "CT head for Johnathan"
    ds.SeriesDescription = "Johnathan axial"
    ds.ImageComments = "MRN 8675309 private"
    ds.StudyDate = "20200315"
    ds.SeriesDate = "20200315"
    ds.AcquisitionDate = "20200316"
    ds.ContentDate = "20200315"
    ds.StudyTime = "101500"
    ds.AcquisitionDateTime = "20200315101010.000000"
    ds.SeriesNumber = "3"
    ds.InstanceNumber = "1"
    ds.BurnedInAnnotation = "NO"
    ds.OtherPatientIDsSequence = Sequence([_person_item()])
    request = Dataset()
    request.RequestedProcedureDescription = "NESTED-PHI-DEEP"
    request.RequestedProcedureID = "REQ-PHI-777"
    deeper = Dataset()
    deeper.ReferencedSOPClassUID = CTImageStorage
    deeper.ReferencedSOPInstanceUID = REF_UID
    deeper.PersonName = PHI_NAME
    request.ReferencedStudySequence = Sequence([deeper])
    ds.RequestAttributesSequence = Sequence([request])
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage
    reference.ReferencedSOPInstanceUID = REF_UID
    ds.ReferencedImageSequence = Sequence([reference])
    region = Dataset()
    region.CodeValue = "T-A0100"
    region.CodingSchemeDesignator = "SRT"
    region.CodeMeaning = "Brain"
    region.PersonName = "NESTED-PHI-DEEP^X"
    region.TextValue = "NESTED-PHI-DEEP free text"
    ds.AnatomicRegionSequence = Sequence([region])
    block = ds.private_block(0x0009, "ACME PHI CREATOR", create=True)
    block.add_new(0x01, "LO", "PRIVATE-PHI-SECRET")
    private_item = Dataset()
    private_item.PatientName = PHI_NAME
    block.add_new(0x02, "SQ", Sequence([private_item]))
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60003000, "OW", b"OVERLAY-PHI-----")
    ds.add_new(0x60004000, "LT", "OVERLAY-PHI comment")
    ds.add_new(0x50003000, "OW", b"CURVE-PHI-------")
    ds.add_new(0x00089998, "LO", "UNKNOWN-TAG-PHI")
    icon = Dataset()
    icon.Rows = 4
    icon.Columns = 4
    icon.SamplesPerPixel = 1
    icon.PhotometricInterpretation = "MONOCHROME2"
    icon.BitsAllocated = 8
    icon.BitsStored = 8
    icon.HighBit = 7
    icon.PixelRepresentation = 0
    icon.PixelData = b"ICON-PHI-AAAAAAA"
    ds.IconImageSequence = Sequence([icon])
    ds.add_new(0xFFFCFFFC, "OB", b"PADDING-PHI-----")
    return ds


def set_ct_pixels(ds: Dataset, pixels: np.ndarray) -> None:
    ds.set_pixel_data(pixels, "MONOCHROME2", 16, generate_instance_uid=False)
    ds.RescaleSlope = "1"
    ds.RescaleIntercept = "0"
    ds.PixelSpacing = ["0.5", "0.5"]


def to_bytes(ds: FileDataset) -> bytes:
    buffer = io.BytesIO()
    implicit = ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    return buffer.getvalue()


def build_ct(*, frames: int = 1, implicit: bool = False, rle: bool = False) -> bytes:
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    sop_class = "1.2.840.10008.5.1.4.1.1.7.3" if frames > 1 else CTImageStorage
    ds = phi_dataset(sop_class=sop_class, transfer_syntax=syntax)
    set_ct_pixels(ds, ct_pixels(frames=frames).astype(np.uint16) if frames > 1 else ct_pixels())
    if frames > 1:
        ds.PixelRepresentation = 0
    if rle:
        ds.compress(RLELossless, generate_instance_uid=False)
    return to_bytes(ds)


def jpeg_with_phi(image: Image.Image) -> bytes:
    """A JPEG whose APP segments and comment carry PHI."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, comment=b"ENCAPS-JPEG-PHI")
    return buffer.getvalue()


def build_jpeg_sc() -> bytes:
    """Secondary capture whose encapsulated JPEG stream carries a JPEG comment with PHI."""
    ds = phi_dataset(sop_class="1.2.840.10008.5.1.4.1.1.7", modality="OT")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    rgb[16:48, 16:48] = (200, 60, 60)
    ds.PixelData = encapsulate([jpeg_with_phi(Image.fromarray(rgb))])
    ds["PixelData"].VR = "OB"
    ds.Rows, ds.Columns = 64, 64
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.ConversionType = "WSD"
    del ds.BurnedInAnnotation
    return to_bytes(ds)


def iptc_segment(text: str) -> bytes:
    """An APP13 Photoshop/IPTC segment with a By-line record."""
    value = text.encode()
    record = b"\x1c\x02\x50" + struct.pack(">H", len(value)) + value
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(record)) + record
    if len(record) % 2:
        resource += b"\x00"
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def photo(width: int = 96, height: int = 64) -> Image.Image:
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, : width // 2] = (230, 30, 30)
    arr[: height // 2, width // 2 :] = (30, 200, 30)
    arr[height // 2 :, width // 2 :] = (30, 30, 220)
    return Image.fromarray(arr)


def exif_with_phi(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x013B] = "EXIF-ARTIST-PHI"
    exif[0x010E] = "Johnathan at St Elsewhere Hospital"
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00EXIF-COMMENT-PHI"
    exif.get_ifd(0x8769)[0x9003] = "2020:03:15 10:10:10"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 31.0, 24.0)
    gps[0x1C] = b"ASCII\x00\x00\x00GPS-AREA-PHI"
    return exif


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>XMP-CREATOR-PHI'
    b"</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
)


def build_jpeg(orientation: int = 1) -> bytes:
    from PIL import ImageCms

    buffer = io.BytesIO()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo().save(
        buffer,
        format="JPEG",
        quality=92,
        exif=exif_with_phi(orientation).tobytes(),
        comment=b"JPEG-COM-PHI",
        xmp=XMP,
        icc_profile=icc,
    )
    data = buffer.getvalue()
    return data[:2] + iptc_segment("IPTC-BYLINE-PHI") + data[2:]


def build_png() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "PNG-TEXT-PHI")
    info.add_itxt("Description", "PNG-ITXT-PHI Johnathan", lang="en", tkey="Beschreibung")
    info.add_text("Comment", "PNG-ZTXT-PHI " * 20, zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    buffer = io.BytesIO()
    photo().convert("RGBA").save(buffer, format="PNG", pnginfo=info, exif=exif_with_phi().tobytes())
    return buffer.getvalue()


def data_dir() -> Path:
    default = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
    return Path(os.environ.get("TESSERA_DATA_DIR", default))


@pytest.fixture(scope="session")
def mr_series() -> list[Path]:
    """The 40 real Toshiba MR slices; fails (never skips) when the data is missing."""
    folder = data_dir() / "images" / "dicom_mr_brain_toshiba" / "7006_DTI_ortho_b0"
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == 40, f"real MR test data missing or incomplete in {folder}"
    return files
