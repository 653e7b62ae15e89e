"""Offline runner of the intake pipeline, wrapped by ``manage.py deidentify INPUT... --output DIR``.

Walks files and folders (zips are unpacked in memory), writes each cleaned image to
``DIR/<n>_<sha256 prefix><ext>`` (never under a name taken from the input) and ``DIR/report.json``
with one entry per input file or zip member.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from consent.deid import profile
from consent.deid.errors import Rejected
from consent.deid.limits import Limits
from consent.deid.pipeline import Outcome, process_upload
from consent.deid.sniff import ZIP_SIGNATURES

logger = logging.getLogger(__name__)

REPORT_NAME: Final = "report.json"


def _walk(path: Path) -> Iterator[Path]:
    if path.is_symlink():
        return
    if path.is_file():
        yield path
    elif path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and not child.is_symlink():
                yield child


def run(
    inputs: list[Path],
    output_dir: Path,
    *,
    secret: bytes,
    donor_key: str,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """De-identify every input file; return the report that is also written as report.json.

    The report's ``ok`` is True only when every input file (and every zip member) was cleaned;
    the management command exits 0 exactly then. An input that does not exist, or a folder
    without files, counts as a rejected entry.
    """
    limits = limits or Limits()
    output_dir.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    counter = 0
    for raw in inputs:
        path = Path(raw)
        files = list(_walk(path))
        if not files:
            reason = "No such file or folder." if not path.exists() else "No files found."
            entries.append(_rejected_entry(path, None, Rejected(reason, "no_input")))
            continue
        for file in files:
            try:
                data = file.read_bytes() if file.stat().st_size <= limits.max_bytes else None
            except OSError as exc:
                logger.warning("cannot read %s: %s", file, exc)
                entries.append(
                    _rejected_entry(file, None, Rejected("The file cannot be read.", "unreadable"))
                )
                continue
            if data is None:
                too_large = Rejected(
                    f"The file is larger than the limit of {limits.max_bytes} bytes.", "too_large"
                )
                entries.append(_rejected_entry(file, None, too_large))
                continue
            outcomes = process_upload(
                data, filename_hint=file.name, donor_key=donor_key, secret=secret, limits=limits
            )
            is_archive = data.startswith(ZIP_SIGNATURES)
            for outcome in outcomes:
                member = outcome.name if is_archive else None
                if outcome.processed is None:
                    entries.append(_rejected_entry(file, member, outcome.rejected))
                    continue
                counter += 1
                entries.append(_cleaned_entry(file, member, outcome, output_dir, counter))
    report: dict[str, Any] = {
        "tool": "tessera consent.deid",
        "profile": profile.STANDARD_EDITION,
        "ok": bool(entries) and all(entry["status"] == "cleaned" for entry in entries),
        "cleaned": sum(entry["status"] == "cleaned" for entry in entries),
        "rejected": sum(entry["status"] == "rejected" for entry in entries),
        "entries": entries,
    }
    (output_dir / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _cleaned_entry(
    file: Path, member: str | None, outcome: Outcome, output_dir: Path, counter: int
) -> dict[str, Any]:
    processed = outcome.processed
    assert processed is not None  # noqa: S101 - narrowed by the caller
    target = output_dir / f"{counter:05d}_{processed.sha256[:12]}{processed.extension}"
    target.write_bytes(processed.cleaned)
    return {
        "input": str(file),
        "member": member,
        "status": "cleaned",
        "output": str(target),
        "kind": processed.kind,
        "sha256": processed.sha256,
        "phash": processed.phash,
        "frames": processed.frames,
        "width": processed.width,
        "height": processed.height,
        "modality": processed.modality,
        "flags": list(processed.flags),
        "needs_review": processed.needs_review,
        "text_boxes": len(processed.text_boxes),
    }


def _rejected_entry(file: Path, member: str | None, rejected: Rejected | None) -> dict[str, Any]:
    rejected = rejected or Rejected("The file was not processed.", "unknown")
    return {
        "input": str(file),
        "member": member,
        "status": "rejected",
        "code": rejected.code,
        "reason": rejected.reason,
    }
