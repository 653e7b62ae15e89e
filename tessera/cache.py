"""Django's Redis cache with one connection pool per server for the whole process.

Django keeps a cache object per thread and async context, and each object builds its own
connection pool: served over ASGI, where every request runs in a thread of its own, each request
that touched the cache opened a new connection to Redis (TCP connect, client set-up) and left it
to be closed later. Here the pools are shared by every cache object of the process, so requests
reuse open connections. redis-py's pools are thread-safe and reset themselves in a forked child.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_pools: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class _SharedPoolClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        index = self._get_connection_pool_index(write)
        server = self._servers[index]
        key = (server, repr(sorted(self._pool_options.items())))
        pool = _pools.get(key)
        if pool is None:
            with _lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = self._pool_class.from_url(server, **self._pool_options)
                    _pools[key] = pool
        return pool


class RedisCache(DjangoRedisCache):
    """``django.core.cache.backends.redis.RedisCache`` whose connection pools are per process."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedPoolClient
