"""CPU per stored label on the match-three move path: fixed work in one thread, no load, no noise.

The throughput benchmark (``match3_submit.py``) swings by ±30 % with whatever else the machine
does; this one plays a fixed number of levels through Django's test client in one thread and
reports the CPU they cost (this process + its PostgreSQL backend) per stored label, per moves
request and per level start, with the queries of each. Compare two commits with it first, then
confirm with the throughput benchmark.

    python bench/match3_cpu.py --db postgres --levels 40
    python bench/match3_cpu.py --db postgres --levels 40 --profile 30   # + cProfile's top 30
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import time

from match3_setup import big_dataset, configure
from match3_submit import _cpu_seconds, _gold_answers, _judgements, _new_player


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--levels", type=int, default=40)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--level", default="level-1")
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's top N")
    parser.add_argument("--profile-out", default="", help="also write the cProfile data here")
    args = parser.parse_args(argv)
    configure(args.db)
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from annotate.models import Annotation
    from games import services

    clock = [time.time_ns() // 1_000_000]

    def fake_now() -> int:  # thinking time, as in match3_asgi.py: the answers count
        clock[0] += 1000
        return clock[0]

    services.now_ms = fake_now
    dataset = big_dataset("bench-selection", args.images)
    gold = _gold_answers(dataset)
    user = _new_player(dataset, args.level)
    client = Client()
    client.force_login(user)
    backend = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]

    def post(path: str, payload: dict) -> dict:
        response = client.post(path, payload, content_type="application/json")
        if response.status_code not in (200, 201):
            raise SystemExit(f"{path}: HTTP {response.status_code} {response.content[:300]!r}")
        return response.json()

    rnd = random.Random(1)
    cpu = {"start": [0.0, 0.0, 0, 0], "move": [0.0, 0.0, 0, 0]}  # own s, backend s, n, queries

    def timed(kind: str, path: str, payload: dict) -> dict:
        own, pg = time.process_time(), _cpu_seconds(backend) if backend else 0.0
        with CaptureQueriesContext(connection) as queries:
            body = post(path, payload)
        row = cpu[kind]
        row[0] += time.process_time() - own
        row[1] += (_cpu_seconds(backend) - pg) if backend else 0.0
        row[2] += 1
        row[3] += len(queries)
        return body

    # One unmeasured level first: imports, URL resolver, first connections.
    body = post("/api/v1/match3/sessions/", {"dataset": dataset.slug, "level": args.level})
    while body["view"]["status"] == "playing" and (
        moves := _judgements(body["view"], args.batch, rnd, gold)
    ):
        body = post(f"/api/v1/match3/sessions/{body['token']}/moves/", {"moves": moves})
    labels_before = Annotation.objects.filter(player=user).count()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    for _ in range(args.levels):
        body = timed(
            "start", "/api/v1/match3/sessions/", {"dataset": dataset.slug, "level": args.level}
        )
        token, view = body["token"], body["view"]
        while view["status"] == "playing":
            moves = _judgements(view, args.batch, rnd, gold)
            if not moves:
                break
            view = timed("move", f"/api/v1/match3/sessions/{token}/moves/", {"moves": moves})[
                "view"
            ]
        reset_queries()
    if profiler:
        profiler.disable()
    labels = Annotation.objects.filter(player=user).count() - labels_before
    total = sum(r[0] + r[1] for r in cpu.values())
    out = {
        "db": connection.vendor,
        "levels": args.levels,
        "labels": labels,
        "cpu_ms_per_label": round(1000 * total / max(labels, 1), 3),
        **{
            f"{kind}_ms_own_pg_queries": [
                round(1000 * r[0] / max(r[2], 1), 2),
                round(1000 * r[1] / max(r[2], 1), 2),
                round(r[3] / max(r[2], 1), 1),
            ]
            for kind, r in cpu.items()
        },
        "requests": {kind: r[2] for kind, r in cpu.items()},
    }
    print(json.dumps(out))
    if profiler:
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
