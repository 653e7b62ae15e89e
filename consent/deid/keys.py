"""Keyed, deterministic replacements: UIDs, the donor pseudonym and the per-donor date offset.

Everything is an HMAC-SHA256 under the per-deployment ``secret`` with the donor key mixed in, so
the same input gives the same output for the same donor (files of one study stay linked) while
nobody without the secret can recompute or reverse the mapping, and two donors never share one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

UID_ROOT: Final = "2.25."
#: Date offsets lie in [-MAX_SHIFT_DAYS, -MIN_SHIFT_DAYS]: always into the past, never zero.
MIN_SHIFT_DAYS: Final = 30
MAX_SHIFT_DAYS: Final = 3_650


def _mac(secret: bytes, purpose: str, donor_key: str, value: str = "") -> bytes:
    if not secret:
        raise ValueError("the de-identification secret must not be empty")
    message = b"\x00".join((purpose.encode(), donor_key.encode(), value.encode()))
    return hmac.new(secret, message, hashlib.sha256).digest()


def keyed_uid(uid: str, *, secret: bytes, donor_key: str) -> str:
    """Replace a UID by a valid UID under the ``2.25`` root (ITU-T X.667 UUID form).

    The first 128 bits of the HMAC become a UUID with version 8 (custom) and the RFC 9562
    variant bits set, written as an unsigned decimal: at most 39 digits, so at most 44
    characters, below the 64 allowed for the UI value representation.
    """
    value = int.from_bytes(_mac(secret, "uid", donor_key, uid.strip().rstrip("\x00"))[:16], "big")
    value &= ~(0xF << 76)
    value |= 0x8 << 76
    value &= ~(0x3 << 62)
    value |= 0x2 << 62
    return f"{UID_ROOT}{value}"


def donor_pseudonym(*, secret: bytes, donor_key: str) -> str:
    """The value written to PatientName and PatientID: ``TSR-`` and 16 base32 characters."""
    digest = _mac(secret, "pseudonym", donor_key)
    return "TSR-" + base64.b32encode(digest[:10]).decode().rstrip("=")


def date_shift_days(*, secret: bytes, donor_key: str) -> int:
    """Per-donor whole-day offset, negative, in [-MAX_SHIFT_DAYS, -MIN_SHIFT_DAYS]."""
    span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
    value = int.from_bytes(_mac(secret, "date-shift", donor_key)[:8], "big")
    return -(MIN_SHIFT_DAYS + value % span)
