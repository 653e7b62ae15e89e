"""Next-images selection latency with 100,000 images (annotate.selection.next_images_select).

Each call selects 20 images (a refill) for a player who has already been served ``--history``
images, with the adaptive gold mix, and records them as served (like the game does).

    python bench/selection_next.py --db sqlite
    python bench/selection_next.py --db postgres   # DATABASE_URL or the local tessera_bench_match3
    python bench/selection_next.py --db postgres --no-analyze   # a player the planner does not know
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from match3_setup import big_dataset, configure, percentile


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux /proc); 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=2_000)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="leave the planner statistics as they are: the player's history is then unknown "
        "to them, as for every new or fast-growing player until the next ANALYZE",
    )
    args = parser.parse_args()
    configure(args.db)

    import numpy as np
    from django.db import connection, transaction

    from accounts.models import User
    from annotate.selection import next_images_select
    from games.models import GameSession, ServedImage

    dataset = big_dataset("bench-selection", args.images)
    player = User.objects.create(username=f"bench-{time.time_ns()}")
    session = GameSession.objects.create(player=player, dataset=dataset, level_id="bench", state={})
    rng = np.random.default_rng(0)
    # History: the player has already been served this many images.
    first = next_images_select(
        player_id=player.pk, dataset=dataset, count=args.history, gold_rate=0.3, rng=rng
    )
    ServedImage.objects.bulk_create(
        [ServedImage(player=player, image_id=s.image_id, session=session) for s in first]
    )
    if not args.no_analyze:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    backend = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
    cpu_start = time.process_time(), _cpu_seconds(backend)
    timings = []
    for _ in range(args.calls):
        start = time.perf_counter()
        with transaction.atomic():
            picked = next_images_select(
                player_id=player.pk,
                dataset=dataset,
                count=args.count,
                gold_rate=0.3,
                rng=rng,
                exclude_image_ids=[1, 2, 3],
            )
            ServedImage.objects.bulk_create(
                [ServedImage(player=player, image_id=s.image_id, session=session) for s in picked]
            )
        timings.append((time.perf_counter() - start) * 1000)
        if len(picked) != args.count:
            raise SystemExit(f"only {len(picked)} images selected")
    cpu_python = (time.process_time() - cpu_start[0]) / args.calls * 1000
    cpu_db = (_cpu_seconds(backend) - cpu_start[1]) / args.calls * 1000
    served = ServedImage.objects.filter(player=player)
    if served.count() != served.values("image_id").distinct().count():
        raise SystemExit("an image was served twice")
    print(
        f"database: {connection.vendor}; images in dataset: {args.images}; "
        f"history: {args.history}; images per call: {args.count}; calls: {args.calls}; "
        f"statistics: {'as they were' if args.no_analyze else 'ANALYZE after the history'}"
    )
    print(
        f"selection + served record, ms: p50 {percentile(timings, 50):.2f}  "
        f"p95 {percentile(timings, 95):.2f}  p99 {percentile(timings, 99):.2f}  "
        f"max {max(timings):.2f}"
    )
    print(
        f"CPU per call, ms: this process {cpu_python:.2f}"
        + (f" + PostgreSQL backend {cpu_db:.2f}" if backend else "")
    )


if __name__ == "__main__":
    main()
