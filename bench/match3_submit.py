"""Label submissions per second and latency: the match-three moves API and the label store alone.

Three ways to drive it (``--via``):

``http`` (the honest one)
    Starts ``--servers`` daphne processes (the production ASGI server, one process per core) on
    local ports and sends real HTTP requests from ``--players`` client threads in this process,
    each thread one player with its own API token, spread round-robin over the servers (what a
    load balancer does). Measures everything a request costs on the server: HTTP parsing, ASGI,
    middleware, token auth, DRF, service, engine and database.
``client``
    Django's test client in ``--procs`` processes x ``--players`` threads: the same server-side
    path without a socket (the figure earlier versions of this file reported).
``labels``
    ``annotate.labelling.labels_submit`` called directly in ``--procs`` processes x ``--players``
    threads: the label store alone (idempotency check, access and status check, one insert),
    without the game.

Every moves request is a batch of ``--batch`` judgements of distinct tiles with a random class
(seeded), like a client that sends its queued judgements together; the server clock is advanced
1 s per request so the answers count (not too fast). A level that ends (won or lost) is followed
by a new session of the same level; those start requests are timed separately and their cost is
in the wall time. Players start with the tutorial completed and play ``--level`` (default
level-1, 7x7); ``--level tutorial`` is the small 6x6 level the first version of this benchmark
used. Labels = annotations stored during the run, per second of wall time.

    python bench/match3_submit.py --db postgres --via http --servers 2 --players 8 --batch 20
    python bench/match3_submit.py --db postgres --via labels --procs 2 --players 2 --batch 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from match3_setup import REPO, big_dataset, configure, percentile

LOGS = Path(tempfile.gettempdir())


def _args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--via", choices=["http", "client", "labels"], default="http")
    parser.add_argument("--servers", type=int, default=2, help="server processes (--via http)")
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--procs", type=int, default=2, help="processes (--via client/labels)")
    parser.add_argument("--players", type=int, default=4, help="players (threads) per process")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--level", default="level-1")
    parser.add_argument("--port", type=int, default=8310)
    parser.add_argument("--worker", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.moves: list[float] = []
        self.starts: list[float] = []
        self.errors: list[str] = []

    def add(self, kind: str, ms: float) -> None:
        with self.lock:
            (self.moves if kind == "move" else self.starts).append(ms)


def _new_player(dataset, level: str):
    from accounts.models import User
    from accounts.roles import Role
    from accounts.services import user_grant_role
    from games.models import PlayerDatasetStats

    user = User.objects.create(username=f"bench-{uuid.uuid4().hex[:12]}")
    user_grant_role(user=user, role=Role.VOLUNTEER)
    if level != "tutorial":
        PlayerDatasetStats.objects.create(
            player=user, dataset=dataset, completed_levels=["tutorial"]
        )
    return user


def _gold_answers(dataset) -> dict[str, int]:
    """Public id -> class index of the gold images: the benchmark's players know the checks.

    Players who answered checks at random would lose their lives (and the level) within a few
    batches; real players mostly pass them, so their sessions last a whole level.
    """
    from annotate.models import Image

    order = {pk: k for k, pk in enumerate(dataset.classes.values_list("pk", flat=True))}
    rows = Image.objects.filter(dataset=dataset, gold_class__isnull=False).values_list(
        "public_id", "gold_class_id"
    )
    return {str(public_id): order[cls] for public_id, cls in rows}


def _judgements(view: dict, batch: int, rnd: random.Random, gold: dict[str, int]) -> list[dict]:
    n_classes = len(view["classes"])
    tiles = [t for row in view["board"] for t in row if t and t["gem"] is None]
    return [
        {
            "key": uuid.uuid4().hex,
            "type": "judge",
            "tile": t["tile_id"],
            "class_index": gold.get(t["image_id"], rnd.randrange(n_classes)),
        }
        for t in tiles[:batch]
    ]


def _play(post, dataset_slug, level, batch, stop, seed, res, gold):
    """One player: start (or restart) the level, send judgement batches until ``stop``."""
    rnd = random.Random(seed)
    view = token = None
    while time.perf_counter() < stop:
        if view is None or view["status"] != "playing":
            t = time.perf_counter()
            status, body = post(
                "/api/v1/match3/sessions/", {"dataset": dataset_slug, "level": level}
            )
            res.add("start", (time.perf_counter() - t) * 1000)
            if status not in (200, 201):
                res.errors.append(f"start HTTP {status}: {str(body)[:200]}")
                return
            token, view = body["token"], body["view"]
        moves = _judgements(view, batch, rnd, gold)
        if not moves:
            view = None
            continue
        t = time.perf_counter()
        status, body = post(f"/api/v1/match3/sessions/{token}/moves/", {"moves": moves})
        res.add("move", (time.perf_counter() - t) * 1000)
        if status != 200:
            res.errors.append(f"moves HTTP {status}: {str(body)[:200]}")
            return
        view = body["view"]


def _http_post(port: int, token: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def post(path: str, payload: dict):
        conn.request("POST", path, body=json.dumps(payload), headers=headers)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data[:300]

    return post


def _client_post(user):
    from django.test import Client

    client = Client()
    client.force_login(user)

    def post(path: str, payload: dict):
        response = client.post(path, payload, content_type="application/json")
        return response.status_code, response.json()

    return post


# --------------------------------------------------------------------------------- label store
def _label_loop(dataset, batch: int, stop: float, seed: int, res: Results) -> None:
    """One player storing batches of labels through ``labels_submit`` (no game, no HTTP)."""
    import numpy as np
    from django.db import connection, transaction

    from annotate.labelling import LabelInput, labels_submit
    from annotate.models import Annotation
    from annotate.selection import next_images_select
    from games.models import GameSession, ServedImage

    user = _new_player(dataset, "tutorial")
    session = GameSession.objects.create(
        player=user, dataset=dataset, level_id="bench-labels", state={}
    )
    rng = np.random.default_rng(seed)
    classes = list(dataset.classes.values_list("pk", flat=True))
    while time.perf_counter() < stop:
        with transaction.atomic():  # what the game does before labels: serve the images
            picked = next_images_select(
                player_id=user.pk, dataset=dataset, count=batch * 5, gold_rate=0.0, rng=rng
            )
            ServedImage.objects.bulk_create(
                [ServedImage(player=user, image_id=s.image_id, session=session) for s in picked]
            )
        allowed = frozenset(s.image_id for s in picked)
        for k in range(0, len(picked) - batch + 1, batch):
            labels = [
                LabelInput(uuid.uuid4().hex, s.image_id, classes[int(rng.integers(2))], 1500)
                for s in picked[k : k + batch]
            ]
            t = time.perf_counter()
            labels_submit(
                player_id=user.pk,
                labels=labels,
                source=Annotation.Source.MATCH_THREE,
                allowed_image_ids=allowed,
            )
            res.add("move", (time.perf_counter() - t) * 1000)
            if time.perf_counter() >= stop:
                break
    connection.close()


# --------------------------------------------------------------------------------- drivers
def _run_threads(target, n: int) -> None:
    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _worker(args: argparse.Namespace) -> None:
    """A child process (--via client/labels): run ``--players`` threads, print JSON results."""
    configure(args.db, migrate=False)
    from django.db import connection

    from games import services

    dataset = big_dataset("bench-selection", args.images)
    res = Results()
    clock = [time.time_ns() // 1_000_000]
    lock = threading.Lock()

    def fake_now() -> int:
        with lock:
            clock[0] += 1000
            return clock[0]

    services.now_ms = fake_now
    users = [_new_player(dataset, args.level) for _ in range(args.players)]
    gold = _gold_answers(dataset)
    while time.time() < args.start_at:
        time.sleep(0.01)
    stop = time.perf_counter() + args.seconds

    backend_cpu: list[float] = []

    def run(k: int) -> None:
        seed = args.worker * 1000 + k
        backend, cpu_before = None, 0.0
        if connection.vendor == "postgresql":  # this thread's own connection and backend
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend = cursor.fetchone()[0]
            cpu_before = _cpu_seconds(backend)
        try:
            if args.via == "labels":
                _label_loop(dataset, args.batch, stop, seed, res)
            else:
                post = _client_post(users[k])
                _play(post, dataset.slug, args.level, args.batch, stop, seed, res, gold)
        finally:
            if backend is not None:
                with lock:
                    backend_cpu.append(_cpu_seconds(backend) - cpu_before)
            connection.close()

    began = time.perf_counter()
    cpu_began = time.process_time()
    _run_threads(run, args.players)
    print(
        json.dumps(
            {
                "moves": res.moves,
                "starts": res.starts,
                "errors": res.errors,
                "wall": time.perf_counter() - began,
                "cpu": [time.process_time() - cpu_began, sum(backend_cpu)],
            }
        )
    )


def _daphne(args: argparse.Namespace, env: dict) -> list[subprocess.Popen]:
    servers = []
    for k in range(args.servers):
        servers.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / args.server),
                    *(
                        ["--host", "127.0.0.1", "--port", str(args.port + k), "--no-access-log"]
                        if args.server == "uvicorn"
                        else ["-b", "127.0.0.1", "-p", str(args.port + k)]
                    ),
                    "match3_asgi:application",
                ],
                cwd=REPO / "bench",
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(LOGS / f"match3-{args.server}-{k}.log", "w"),  # noqa: SIM115
            )
        )
    for k in range(args.servers):
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", args.port + k, timeout=2)
                conn.request("GET", "/health/")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"{args.server} on port {args.port + k} did not start")
    return servers


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_cpu(servers: list[subprocess.Popen], cpu_before: list[float]) -> tuple[float, float]:
    """CPU seconds the daphne processes and their PostgreSQL backends spent since the start.

    The backends are the server processes' own connections (opened on their first request), so
    their whole CPU time belongs to the run; other databases' backends are not counted.
    """
    from django.db import connection

    daphne = sum(_cpu_seconds(p.pid) - c for p, c in zip(servers, cpu_before, strict=True))
    if connection.vendor != "postgresql":
        return daphne, 0.0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        pids = [row[0] for row in cursor.fetchall()]
    postgres = 0.0
    for pid in pids:
        try:
            postgres += _cpu_seconds(pid)
        except OSError:  # a backend that ended meanwhile
            continue
    return daphne, postgres


def main() -> None:
    args = _args()
    if args.worker >= 0:
        _worker(args)
        return
    configure(args.db)
    from django.db import connection

    from annotate.models import Annotation

    dataset = big_dataset("bench-selection", args.images)
    before = Annotation.objects.count()
    res = Results()
    path = [str(REPO), str(REPO / "bench"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    servers: list[subprocess.Popen] = []
    cpu: tuple[float, float] | None = None
    try:
        if args.via == "http":
            from rest_framework.authtoken.models import Token

            servers = _daphne(args, env)
            players = [_new_player(dataset, args.level) for _ in range(args.players)]
            tokens = [Token.objects.create(user=u).key for u in players]
            gold = _gold_answers(dataset)
            connection.close()
            cpu_before = [_cpu_seconds(p.pid) for p in servers]
            stop = time.perf_counter() + args.seconds
            began = time.perf_counter()
            _run_threads(
                lambda k: _play(
                    _http_post(args.port + k % args.servers, tokens[k]),
                    dataset.slug,
                    args.level,
                    args.batch,
                    stop,
                    k,
                    res,
                    gold,
                ),
                args.players,
            )
            wall = time.perf_counter() - began
            cpu = _server_cpu(servers, cpu_before)
        else:
            connection.close()
            start_at = time.time() + 3 + 1.5 * args.procs
            children = [
                subprocess.Popen(
                    [sys.executable, __file__, *sys.argv[1:], "--worker", str(k)]
                    + ["--start-at", str(start_at)],
                    stdout=subprocess.PIPE,
                    env=env,
                    text=True,
                )
                for k in range(args.procs)
            ]
            walls = []
            for child in children:
                out, _ = child.communicate()
                data = json.loads(out.strip().splitlines()[-1])
                res.moves += data["moves"]
                res.starts += data["starts"]
                res.errors += data["errors"]
                walls.append(data["wall"])
                cpu = (
                    (cpu or (0.0, 0.0))[0] + data["cpu"][0],
                    (cpu or (0.0, 0.0))[1] + data["cpu"][1],
                )
            wall = max(walls)
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    labels = Annotation.objects.count() - before
    if res.errors:
        print("errors:", res.errors[:3])
    who = (
        f"{args.servers} {args.server} processes, {args.players} HTTP client threads"
        if args.via == "http"
        else f"{args.procs} processes x {args.players} threads"
    )
    what = "labels_submit batches" if args.via == "labels" else f"moves API, level {args.level}"
    print(
        f"database: {connection.vendor}; via: {args.via} ({who}); {what}; "
        f"batch: {args.batch}; wall: {wall:.1f} s; requests: {len(res.moves)} "
        f"(+{len(res.starts)} level starts); labels stored: {labels}"
    )
    print(
        f"labels/s: {labels / wall:.0f}; requests/s: {len(res.moves) / wall:.1f}; "
        f"latency per batch ms: p50 {percentile(res.moves, 50):.1f}  "
        f"p95 {percentile(res.moves, 95):.1f}  p99 {percentile(res.moves, 99):.1f}"
    )
    if cpu is not None and labels:
        per_label = (cpu[0] + cpu[1]) / labels
        server = args.server if args.via == "http" else "benchmark processes (incl. the client)"
        print(
            f"server CPU: {server} {cpu[0]:.1f} s + PostgreSQL backends {cpu[1]:.1f} s = "
            f"{per_label * 1000:.2f} ms per label; 2 cores fully used would store "
            f"{2 / per_label:.0f} labels/s"
        )
    if res.starts:
        print(
            f"level starts ms: p50 {percentile(res.starts, 50):.1f}  "
            f"p95 {percentile(res.starts, 95):.1f}  p99 {percentile(res.starts, 99):.1f}"
        )


if __name__ == "__main__":
    main()
