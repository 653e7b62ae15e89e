"""Pure de-identification and intake pipeline for donated images (no Django imports).

Entry points: :func:`consent.deid.pipeline.process` (one file), :func:`process_upload`
(a file or a zip), :func:`consent.deid.cli.run` (offline runner), :func:`redact_stored`.
"""

from consent.deid.errors import Rejected
from consent.deid.limits import Limits
from consent.deid.ocr import TextBox, redact_regions
from consent.deid.pipeline import Outcome, Processed, process, process_upload
from consent.deid.redact import redact_stored

__all__ = [
    "Limits",
    "Outcome",
    "Processed",
    "Rejected",
    "TextBox",
    "process",
    "process_upload",
    "redact_regions",
    "redact_stored",
]
