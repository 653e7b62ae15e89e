"""Pieces shared by the game engines: the move error and the event base class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class InvalidMove(ValueError):
    """A move the engine refuses (unknown tile, wrong phase, finished game...).

    The state is unchanged when this is raised; services map it to a 4xx reply with ``str(error)``.
    """


@dataclass(frozen=True)
class Event:
    """Base of the engines' events. Subclasses set ``kind`` and add frozen fields."""

    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"kind": ..., <fields>}`` (tuples become lists when serialised).

        Fields hold numbers, strings and tuples of them, all immutable, so they are shared rather
        than deep-copied as ``dataclasses.asdict`` would."""
        return {"kind": self.kind, **vars(self)}
