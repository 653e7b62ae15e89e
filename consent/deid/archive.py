"""Safe iteration over the members of an uploaded zip archive.

Member paths are never used as file paths: a member is returned as bytes with a display name
(its last path component, stripped of control characters). Directories and symbolic links are
skipped; nested archives, encrypted members and members that expand beyond the limits are
returned as rejected members; archive-wide violations raise :class:`Rejected`.
"""

from __future__ import annotations

import io
import logging
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from consent.deid.errors import Rejected
from consent.deid.limits import Limits
from consent.deid.sniff import ZIP_SIGNATURES

logger = logging.getLogger(__name__)

MAX_NAME_CHARS: Final = 120


@dataclass(frozen=True, slots=True)
class Member:
    """One regular file of the archive: its bytes, or why it was refused."""

    index: int
    name: str
    data: bytes | None
    rejected: Rejected | None


def display_name(raw: str) -> str:
    """Last path component of a member name, printable characters only, for reports."""
    last = raw.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in last if ch.isprintable())
    return cleaned[:MAX_NAME_CHARS] or "(unnamed)"


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def iter_members(data: bytes, limits: Limits) -> Iterator[Member]:
    """Yield every regular-file member of the zip in ``data``.

    Raises
    ------
    Rejected
        When the archive itself is unreadable, has too many members, or expands beyond
        ``limits.max_zip_total_bytes`` (raised when the limit is reached while iterating).
    """
    if len(data) > limits.max_bytes:
        raise Rejected(
            f"The archive is {len(data)} bytes; the limit is {limits.max_bytes} bytes.",
            "too_large",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise Rejected("The zip archive is corrupt or unreadable.", "zip_corrupt") from exc
    if len(infos) > limits.max_zip_members:
        raise Rejected(
            f"The archive has {len(infos)} entries; the limit is {limits.max_zip_members}.",
            "zip_too_many_members",
        )
    total = 0
    with archive:
        for index, info in enumerate(infos):
            if info.is_dir() or _is_symlink(info):
                continue
            name = display_name(info.filename)
            member_limit = limits.max_bytes
            refusal = _refuse_by_header(info, limits)
            if refusal is not None:
                yield Member(index=index, name=name, data=None, rejected=refusal)
                continue
            allowed = min(info.file_size, member_limit, limits.max_zip_total_bytes - total)
            try:
                with archive.open(info) as handle:
                    content = handle.read(allowed + 1)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError,
                    EOFError, zlib.error, ValueError) as exc:  # fmt: skip
                logger.info("zip member %d unreadable: %s", index, type(exc).__name__)
                yield Member(
                    index=index,
                    name=name,
                    data=None,
                    rejected=Rejected(
                        "This archive member could not be read.", "zip_member_corrupt"
                    ),
                )
                continue
            if len(content) > allowed:
                if total + len(content) > limits.max_zip_total_bytes:
                    raise Rejected(
                        "The archive expands beyond the limit of "
                        f"{limits.max_zip_total_bytes} bytes.",
                        "zip_too_large",
                    )
                yield Member(
                    index=index,
                    name=name,
                    data=None,
                    rejected=Rejected(
                        "This archive member expands beyond its declared or allowed size.",
                        "zip_bomb",
                    ),
                )
                continue
            total += len(content)
            if content.startswith(ZIP_SIGNATURES):
                yield Member(
                    index=index,
                    name=name,
                    data=None,
                    rejected=Rejected("Archives inside archives are not accepted.", "zip_nested"),
                )
                continue
            yield Member(index=index, name=name, data=content, rejected=None)


def _refuse_by_header(info: zipfile.ZipInfo, limits: Limits) -> Rejected | None:
    if info.flag_bits & 0x1:
        return Rejected("Encrypted archive members are not accepted.", "zip_encrypted")
    if info.file_size > limits.max_bytes:
        return Rejected(
            f"This archive member is {info.file_size} bytes; the limit is {limits.max_bytes}.",
            "too_large",
        )
    if info.file_size > max(info.compress_size, 1) * limits.max_zip_ratio:
        return Rejected(
            "This archive member is compressed more than "
            f"{limits.max_zip_ratio}:1, which is refused as a possible zip bomb.",
            "zip_bomb",
        )
    return None
