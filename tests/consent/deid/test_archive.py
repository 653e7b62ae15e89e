"""Zip uploads: traversal names, bombs, nesting, links, encryption and limits."""

from __future__ import annotations

import io
import zipfile

import pytest

from consent.deid import Limits, Rejected, process_upload
from consent.deid.archive import display_name, iter_members
from tests.consent.deid.conftest import DONOR, NO_OCR, SECRET, build_ct, build_png


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("/abs/scan.dcm", "scan.dcm"),
        ("C:\\Users\\doe\\scan.png", "scan.png"),
        ("a/b/\x00evil\x07.dcm", "evil.dcm"),
        ("dir/", "dir"),
        ("", "(unnamed)"),
    ],
)
def test_display_name_is_a_bare_printable_name(raw: str, shown: str) -> None:
    assert display_name(raw) == shown


def test_traversal_members_are_read_as_bytes_only() -> None:
    data = _zip([("../../../tmp/evil.dcm", build_ct()), ("/etc/cron.d/x.png", build_png())])
    outcomes = process_upload(
        data, filename_hint="up.zip", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    assert [(o.name, o.processed is not None) for o in outcomes] == [
        ("evil.dcm", True),
        ("x.png", True),
    ]
    assert [o.processed.kind for o in outcomes] == ["dicom", "png"]


def test_directories_and_symlinks_are_skipped() -> None:
    link = zipfile.ZipInfo("link.dcm")
    link.create_system = 3
    link.external_attr = 0o120777 << 16
    data = _zip([("folder/", b""), (link, b"/etc/passwd"), ("folder/a.png", build_png())])
    members = list(iter_members(data, NO_OCR))
    assert [(m.name, m.rejected) for m in members] == [("a.png", None)]


def test_zip_bomb_member_is_rejected() -> None:
    data = _zip([("zeros.dcm", b"\x00" * (8 * 1024 * 1024))])
    assert len(data) < 20_000
    members = list(iter_members(data, NO_OCR))
    assert [(m.name, m.data, m.rejected.code) for m in members] == [("zeros.dcm", None, "zip_bomb")]


def test_nested_zip_is_rejected() -> None:
    inner = _zip([("a.png", build_png())])
    members = list(iter_members(_zip([("inner.zip", inner)]), NO_OCR))
    assert [m.rejected.code for m in members] == ["zip_nested"]


def test_encrypted_member_is_rejected() -> None:
    info = zipfile.ZipInfo("secret.png")
    data = bytearray(_zip([(info, build_png())]))
    # Set the "encrypted" general-purpose flag in the local and central headers.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.index(signature)
        data[pos + offset] |= 0x1
    members = list(iter_members(bytes(data), NO_OCR))
    assert [m.rejected.code for m in members] == ["zip_encrypted"]


def test_too_many_members_rejects_the_archive() -> None:
    data = _zip([(f"{i}.png", b"x") for i in range(5)])
    with pytest.raises(Rejected) as info:
        list(iter_members(data, Limits(max_zip_members=4)))
    assert info.value.code == "zip_too_many_members"


def test_total_expansion_limit_stops_the_archive() -> None:
    png = build_png()
    data = _zip([(f"{i}.png", png) for i in range(4)])
    limits = Limits(ocr_enabled=False, max_zip_total_bytes=len(png) * 2 + 10)
    outcomes = process_upload(
        data, filename_hint="up.zip", donor_key=DONOR, secret=SECRET, limits=limits
    )
    assert [o.processed is not None for o in outcomes[:2]] == [True, True]
    assert outcomes[-1].rejected.code == "zip_too_large"
    assert len(outcomes) == 3


def test_corrupt_and_empty_archives() -> None:
    broken = _zip([("a.png", build_png())])[:-30]
    outcomes = process_upload(
        broken, filename_hint="b.zip", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    assert [o.rejected.code for o in outcomes] == ["zip_corrupt"]
    empty = _zip([("folder/", b"")])
    outcomes = process_upload(
        empty, filename_hint="e.zip", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    assert [o.rejected.code for o in outcomes] == ["zip_empty"]


def test_bad_member_does_not_stop_the_others() -> None:
    data = _zip([("a.txt", b"hello"), ("b.png", build_png())])
    outcomes = process_upload(
        data, filename_hint="m.zip", donor_key=DONOR, secret=SECRET, limits=NO_OCR
    )
    assert [(o.name, o.rejected.code if o.rejected else "ok") for o in outcomes] == [
        ("a.txt", "unsupported_format"),
        ("b.png", "ok"),
    ]
