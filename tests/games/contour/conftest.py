from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _quick_rounds(settings):
    # No countdown wait in tests (the phase changes on the next move or tick); a long draw.
    settings.RACE_COUNTDOWN_MS = 0
    settings.RACE_DRAW_MS = 60_000
    settings.RACE_GHOST_WAIT_MS = 10_000
    settings.RACE_LOBBY_WAIT_S = 20


class Clock:
    def __init__(self, start: int = 1_800_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@pytest.fixture
def clock(monkeypatch):
    """The race's server clock, moved by hand."""
    c = Clock()
    monkeypatch.setattr("games.contour.services.now_ms", c)
    return c
