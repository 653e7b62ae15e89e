"""tessera.cache: Redis cache objects of one process share their connection pools."""

from __future__ import annotations

import threading

from tessera.cache import RedisCache


def _pool(cache: RedisCache):  # type: ignore[no-untyped-def]
    return cache._cache._get_connection_pool(write=True)


def test_cache_objects_of_different_threads_share_one_pool():
    # Django builds a cache object per thread (every ASGI request is one); no connection is
    # opened here, only the pools are compared.
    pools = []

    def in_a_thread() -> None:
        pools.append(_pool(RedisCache("redis://127.0.0.1:6379/3", {})))

    threads = [threading.Thread(target=in_a_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(pools) == 3 and all(pool is pools[0] for pool in pools)


def test_other_servers_and_options_get_pools_of_their_own():
    base = _pool(RedisCache("redis://127.0.0.1:6379/3", {}))
    other_db = _pool(RedisCache("redis://127.0.0.1:6379/4", {}))
    other_options = _pool(
        RedisCache("redis://127.0.0.1:6379/3", {"OPTIONS": {"max_connections": 7}})
    )

    assert other_db is not base and other_options is not base
    assert other_db.connection_kwargs["db"] == 4
    assert other_options.max_connections == 7
