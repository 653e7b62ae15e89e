"""Label submissions per second and latency through the match-three moves API.

Django's test client (the whole middleware, session auth, DRF, service, engine and database
path, without a socket) against PostgreSQL, in ``--threads`` threads, each with its own players.
Every request is a batch of ``--batch`` judgements of distinct tiles; the server clock is
advanced 1 s per request so the answers count (not too fast). Labels = annotations stored.

    python bench/match3_submit.py --db postgres --threads 2 --seconds 30
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

from match3_setup import big_dataset, configure, percentile


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args()
    configure(args.db)

    from django.db import connection
    from django.test import Client

    from accounts.models import User
    from accounts.roles import Role
    from accounts.services import user_grant_role
    from annotate.models import Annotation
    from games import services

    dataset = big_dataset("bench-selection", args.images)
    clock = [time.time_ns() // 1_000_000]
    lock = threading.Lock()

    def fake_now() -> int:
        with lock:
            clock[0] += 1000
            return clock[0]

    services.now_ms = fake_now
    latencies: list[float] = []
    requests = [0]
    before = Annotation.objects.count()
    stop = time.perf_counter() + args.seconds

    def player_loop() -> None:
        user = User.objects.create(username=f"bench-{uuid.uuid4().hex[:10]}")
        user_grant_role(user=user, role=Role.VOLUNTEER)
        client = Client()
        client.force_login(user)
        token = None
        view = None
        while time.perf_counter() < stop:
            if view is None or view["status"] != "playing":
                body = client.post(
                    "/api/v1/match3/sessions/",
                    {"dataset": dataset.slug, "level": "tutorial"},
                    content_type="application/json",
                ).json()
                token, view = body["token"], body["view"]
            tiles = [t["tile_id"] for row in view["board"] for t in row if t and t["gem"] is None]
            moves = [
                {"key": uuid.uuid4().hex, "type": "judge", "tile": t, "class_index": 0}
                for t in tiles[: args.batch]
            ]
            start = time.perf_counter()
            response = client.post(
                f"/api/v1/match3/sessions/{token}/moves/",
                {"moves": moves},
                content_type="application/json",
            )
            elapsed = (time.perf_counter() - start) * 1000
            if response.status_code != 200:
                raise SystemExit(f"HTTP {response.status_code}: {response.content[:200]!r}")
            view = response.json()["view"]
            with lock:
                latencies.append(elapsed)
                requests[0] += 1
        connection.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=player_loop) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    labels = Annotation.objects.count() - before
    print(
        f"database: {connection.vendor}; threads: {args.threads}; batch: {args.batch} judgements; "
        f"wall: {wall:.1f} s; requests: {requests[0]}; labels stored: {labels}"
    )
    print(
        f"labels/s: {labels / wall:.0f}; requests/s: {requests[0] / wall:.1f}; "
        f"latency per batch ms: p50 {percentile(latencies, 50):.1f}  "
        f"p95 {percentile(latencies, 95):.1f}  p99 {percentile(latencies, 99):.1f}"
    )


if __name__ == "__main__":
    main()
