"""The project's ASGI application with a server clock that advances 1 s per reading.

Only for bench/match3_submit.py --via http: the benchmark's players answer as fast as the server
lets them, which the game would rightly count as too fast for a human (and then flag them as
bots). Advancing the clock stands in for the players' thinking time without making the client
wait, so the server does the full work of counted labels. Nothing else is changed.
"""

from __future__ import annotations

import itertools
import threading
import time

from tessera.asgi import application  # sets Django up; what daphne serves

_lock = threading.Lock()
_ticks = itertools.count(1)


def _now_ms() -> int:
    with _lock:
        return time.time_ns() // 1_000_000 + 1000 * next(_ticks)


def _patch() -> None:
    from games import services  # only importable once Django is set up

    services.now_ms = _now_ms


_patch()
__all__ = ["application"]
