"""The one exception the intake pipeline raises for a file it will not accept."""

from __future__ import annotations


class Rejected(Exception):
    """A file was refused; ``reason`` is shown to the uploader, ``code`` is stable for programs.

    Parameters
    ----------
    reason
        Human-readable sentence, free of any value read from the file (no PHI echo).
    code
        Short machine-readable slug, e.g. ``"too_large"`` or ``"sop_class_not_allowed"``.
    """

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __repr__(self) -> str:
        return f"Rejected(reason={self.reason!r}, code={self.code!r})"

    def __reduce__(self) -> tuple[type[Rejected], tuple[str, str]]:
        # Celery pickles exceptions across processes; keep both fields.
        return (Rejected, (self.reason, self.code))
