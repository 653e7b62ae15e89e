"""A fixed-window attempt counter in the cache, for the public revocation-code form and API.

DRF's throttles cover API views only and django-ratelimit would be a dependency for one form;
this is the same fixed-window idea in a few lines, shared by both entry points.
"""

from __future__ import annotations

from django.core.cache import cache

#: Attempts per address and per donor ID within `WINDOW_S`.
MAX_ATTEMPTS = 5
WINDOW_S = 15 * 60


def client_address(request) -> str:  # type: ignore[no-untyped-def]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def throttle_hit(*, scope: str, keys: list[str], limit: int = MAX_ATTEMPTS) -> bool:
    """Count one attempt for each key; True when any key is over `limit` in the window."""
    over = False
    for key in keys:
        name = f"throttle:{scope}:{key}"
        cache.add(name, 0, timeout=WINDOW_S)
        try:
            count = cache.incr(name)
        except ValueError:  # expired between add and incr
            cache.set(name, 1, timeout=WINDOW_S)
            count = 1
        over = over or count > limit
    return over
