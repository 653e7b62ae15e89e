"""Contour race: broadcast latency of real rooms over real websockets (daphne + Redis layer).

Simulated players (one asyncio websocket client each, all in this process) race ``--rounds``
rounds in rooms of ``players / rooms`` against one or more daphne processes serving
``tessera.asgi:application`` with the Redis channel layer and cache (``--redis``). Each player, per
round: "ready" in the lobby, then after a think time the first stroke ("progress"), then after
another a contour ("submit"); one player starts the next round once the scores are in.

Latency of a broadcast = the time from a player sending a move until each *other* player of the
room receives the room update that carries its event (ready / drawing / submitted), measured on
one monotonic clock in this process. It includes the whole path: websocket in, consumer, the
service's row-locked transaction, ``group_send`` through Redis, the other consumers, websocket
out, and this process's own client work (all clients share its CPU with the servers).

Usage::

    python bench/race_latency.py --players 200 --rooms 50
    python bench/race_latency.py --players 40 --rooms 10
    python bench/race_latency.py --players 200 --rooms 50 --processes 2 \\
        --database-url postgres://tessera:tessera@127.0.0.1:5432/tessera_bench

By default the database is a fresh SQLite file (WAL) in a temporary folder; ``--database-url``
uses PostgreSQL instead (an empty database you may wipe: it is migrated and filled).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from importlib import import_module
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = """
from tessera.settings import *  # noqa: F403

RACE_COUNTDOWN_MS = 1_000
RACE_DRAW_MS = 30_000
RACE_GHOST_WAIT_MS = 3_600_000
"""
# --layer list: channels_redis' list layer (the production default until 2026-12-04; A/B runs).
LIST_SETTINGS = """
CHANNEL_LAYERS["default"]["BACKEND"] = "channels_redis.core.RedisChannelLayer"
CHANNEL_LAYERS["default"]["CONFIG"]["capacity"] = 5000
"""
W, H = 64, 48  # image size (the gold square of tests.games.contour.factories)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configure(tmp: Path, args: argparse.Namespace) -> dict[str, str]:
    extra = LIST_SETTINGS if args.layer == "list" else ""
    if args.switch_interval:  # the servers' GIL switch interval (Python's default: 5 ms)
        extra += f"\nimport sys\nsys.setswitchinterval({args.switch_interval / 1000})\n"
    (tmp / "race_bench_settings.py").write_text(SETTINGS + extra)
    (tmp / "var").mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "race_bench_settings",
        "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}",
        "TESSERA_VAR_DIR": str(tmp / "var"),
        "REDIS_URL": args.redis,
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    env.pop("CELERY_BROKER_URL", None)
    if args.celery:
        env["CELERY_BROKER_URL"] = args.celery
    if args.database_url:
        # Production settings; plain HTTP on loopback (as behind a TLS proxy).
        env.update(
            DATABASE_URL=args.database_url,
            SECRET_KEY="bench-" + "x" * 60,
            SECURE_SSL_REDIRECT="false",
        )
    return env


def setup_data(args: argparse.Namespace) -> list[dict]:
    """Migrate, then a segmentation dataset, players with sessions, and the rooms (in-process)."""
    import django

    sys.path[:0] = [os.environ["PYTHONPATH"].split(os.pathsep)[0], str(ROOT)]
    django.setup()
    from django.conf import settings
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from accounts.roles import Role
    from annotate.models import Dataset, GoldMask, Image
    from games.contour import services
    from tests.factories import ConsentFactory, DatasetFactory, user_with_role
    from tests.games.contour.factories import square_mask_png

    SessionStore = import_module(settings.SESSION_ENGINE).SessionStore  # noqa: N806
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    # Every room needs an image its players have not outlined, below the label limit.
    dataset = DatasetFactory(
        task=Dataset.Task.SEGMENTATION, target_structure="Lesion", slug="b", max_labels=10_000
    )
    consent = ConsentFactory()
    mask = ContentFile(square_mask_png(), "gold.png")
    for k in range(args.rounds * args.rooms + args.warmup_rooms + 8):
        image = Image.objects.create(
            dataset=dataset,
            donor_id=consent.donor_id,
            consent=consent,
            width=W,
            height=H,
            sha256=f"{k:064x}",
        )
        if k % 2 == 0:  # half gold (scored against the mask), half consensus (STAPLE)
            GoldMask.objects.create(image=image, mask=mask, polygons=[], source="dataset")
    size = args.players // args.rooms
    rooms = []
    for _ in range(args.rooms + args.warmup_rooms):
        players = [user_with_role(Role.VOLUNTEER) for _ in range(size)]
        room = services._room_create(
            dataset=dataset, player_ids=[p.pk for p in players], solo=False
        )
        cookies = []
        for p in players:
            session = SessionStore()
            session["_auth_user_id"] = str(p.pk)
            session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
            session["_auth_user_hash"] = p.get_session_auth_hash()
            session.create()
            cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
        rooms.append(
            {
                "token": str(room.token),
                "players": [
                    {"id": str(p.pk), "cookie": c} for p, c in zip(players, cookies, strict=True)
                ],
            }
        )
    return rooms


# ------------------------------------------------------------------------------------- clients
class Stats:
    def __init__(self) -> None:
        self.sent: dict[tuple[str, str, str], float] = {}
        self.latency_ms: list[float] = []
        # The samples of the moves that changed the phase (the last ready starts the round, the
        # last contour ends it): these do the most work (the round's image, storing, scoring).
        self.phase_change_ms: list[float] = []
        # "ready", "drawing", "submitted"; " 1st": round 1's ready (every room at once); " *": the
        # move that changed the phase
        self.by_kind: dict[str, list[float]] = {}
        self.moves = 0
        self.errors: list[str] = []


class Player:
    def __init__(self, room: dict, me: dict, port: int, stats: Stats, rng: random.Random, rounds):
        self.room, self.me, self.port, self.stats, self.rng = room, me, port, stats, rng
        self.rounds = rounds
        self.view = None
        self.changed = asyncio.Event()
        self.proto = None
        self.open = False
        self.size = len(room["players"])

    # autobahn callbacks
    def on_message(self, data: dict) -> None:
        now = time.perf_counter()
        if data.get("type") == "error" and "next round" not in data["message"]:
            self.stats.errors.append(data["message"])
        if "view" not in data:
            return
        if self.view is not None and data["view"]["seq"] < self.view["seq"]:
            return  # the consumer drops overtaken views; never seen, kept as a guard
        before = self.view["phase"] if self.view is not None else None
        changed = before is not None and data["view"]["phase"] != before
        self.view = data["view"]
        for e in data.get("events", []):
            who = e.get("player_id")
            if who is None or who == self.me["id"]:
                continue
            # Each kind is sent once per round, and only after everyone saw the previous one:
            # the latest send of (room, player, kind) is the one this event answers.
            if e["kind"] == "ready" and e["ready"]:
                key = (self.room["token"], who, "ready")
            elif e["kind"] == "progress" and e["progress"] in ("drawing", "submitted"):
                key = (self.room["token"], who, e["progress"])
            else:
                continue
            sent = self.stats.sent.get(key)
            if sent is not None:
                self.stats.latency_ms.append((now - sent) * 1000)
                if changed:
                    self.stats.phase_change_ms.append((now - sent) * 1000)
                first = key[2] == "ready" and before == "lobby"
                kind = key[2] + (" 1st" if first else "") + (" *" if changed else "")
                self.stats.by_kind.setdefault(kind, []).append((now - sent) * 1000)
        self.changed.set()

    def send(self, message: dict, key: tuple | None = None) -> None:
        if key is not None:
            self.stats.sent[key] = time.perf_counter()
        self.stats.moves += 1
        self.proto.sendMessage(json.dumps(message).encode())

    async def until(self, predicate, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.view is None or not predicate(self.view):
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                v = self.view or {}
                raise TimeoutError(
                    f"player {self.me['id']} stuck in {v.get('phase')} (round "
                    f"{(v.get('round') or {}).get('round_no')}"
                    f", seq {v.get('seq')}, scored {v.get('scored')}, open {self.open})"
                )
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass

    def _ready_all(self, v) -> bool:
        return v["phase"] != "lobby" or all(p["ready"] for p in v["players"])

    async def connect(self) -> None:
        from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

        player = self

        class Proto(WebSocketClientProtocol):
            def onOpen(self):  # noqa: N802 - autobahn's name
                player.proto = self
                player.open = True

            def onClose(self, was_clean, code, reason):  # noqa: N802
                player.open = False

            def onMessage(self, payload, is_binary):  # noqa: N802
                player.on_message(json.loads(payload))

        url = f"ws://127.0.0.1:{self.port}/ws/race/room/{self.room['token']}/"
        factory = WebSocketClientFactory(
            url, origin=f"http://127.0.0.1:{self.port}", headers={"Cookie": self.me["cookie"]}
        )
        factory.protocol = Proto
        # The load generator's own cost: autobahn validates UTF-8 per byte in pure Python unless
        # told not to (the server side validates what it receives; these are its own replies).
        factory.setProtocolOptions(utf8validateIncoming=False)
        await asyncio.get_running_loop().create_connection(factory, "127.0.0.1", self.port)
        await self.until(lambda v: True)

    async def play(self) -> None:
        cx, cy = W / 2 + self.rng.uniform(-2, 2), H / 2 + self.rng.uniform(-2, 2)
        token, me = self.room["token"], self.me["id"]
        for round_no in range(self.rounds):
            if round_no == 0:
                await self.until(lambda v: v["phase"] == "lobby")
                await asyncio.sleep(self.rng.uniform(0.1, 1.0))
                self.send({"type": "ready"}, (token, me, "ready"))
            # Later rounds: "next" from the results was this player's ready (the room waits for
            # every racer there, then goes straight through the lobby to the countdown).
            await self.until(lambda v: v["phase"] == "drawing", timeout=120)
            await asyncio.sleep(self.rng.uniform(0.3, 2.5))
            self.send({"type": "progress"}, (token, me, "drawing"))
            await asyncio.sleep(self.rng.uniform(0.5, 3.0))
            r = self.rng.uniform(9, 13)
            points = [
                [cx + r * np.cos(a) * 1.3, cy + r * np.sin(a)]
                for a in np.linspace(0, 2 * np.pi, 24, endpoint=False)
            ]
            self.send(
                {"type": "submit", "points": points, "closed": True}, (token, me, "submitted")
            )
            # Results, or already the next lobby (views may follow each other faster than this
            # coroutine looks at them).
            await self.until(
                lambda v: (v["phase"] == "results" and v["scored"]) or v["phase"] == "lobby",
                timeout=120,
            )
            if round_no < self.rounds - 1 and self.view["phase"] == "results":
                # Every racer asks for the next round; it starts when all have.
                await asyncio.sleep(self.rng.uniform(0.3, 1.5))
                if self.view["phase"] == "results":
                    self.send({"type": "next"}, (token, me, "ready"))
        self.proto.sendClose()


async def run_clients(
    rooms: list[dict], ports: list[int], rounds: int, seed: int, part: tuple[int, int] = (0, 1)
) -> Stats:
    """Play the rooms of this client process (``part`` = (k, n): every n-th room from the k-th;
    a room's players always share one process, so a latency is read on one clock)."""
    stats = Stats()
    rng = random.Random(seed)
    players = []
    for i, room in enumerate(rooms):
        for me in room["players"]:
            player_rng = random.Random(rng.random())  # the same draws whatever the split
            if i % part[1] == part[0]:
                players.append(Player(room, me, ports[i % len(ports)], stats, player_rng, rounds))
    # Everyone connects first (the storm of connects is not what this measures), then races.
    for start in range(0, len(players), 20):
        await asyncio.gather(*(p.connect() for p in players[start : start + 20]))
    if part[1] > 1:  # a child process: tell the parent, wait for everyone's "go"
        print("connected", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    stats.cpu_at_start = time.process_time()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(p.play() for p in players), return_exceptions=True)
    stats.wall_s = time.perf_counter() - t0  # type: ignore[attr-defined]
    # A player who missed a view and waited out a timeout is reported, not hidden.
    stats.failed = [str(o) for o in outcomes if isinstance(o, BaseException)]  # type: ignore[attr-defined]
    return stats


def set_minus(values: list[float], remove: list[float]) -> list[float]:
    """``values`` without one occurrence of each of ``remove`` (a multiset difference)."""
    left = Counter(remove)
    out = []
    for v in values:
        if left[v]:
            left[v] -= 1
        else:
            out.append(v)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc); 0 for one that is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> list[int]:
    """Processes whose command is ``name`` (PostgreSQL's backends, the Redis server)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """CPU seconds per role over the measured part of a run: servers, worker, clients, and the
    machine's PostgreSQL and Redis processes (backends started meanwhile count from zero)."""

    def __init__(self, roles: dict[str, list[int]]) -> None:
        self.roles = roles
        self.before = {pid: cpu_seconds(pid) for pids in self._all().values() for pid in pids}

    def _all(self) -> dict[str, list[int]]:
        return {
            **self.roles,
            "postgres": pids_named("postgres"),
            "redis": pids_named("redis-server"),
        }

    def spent(self) -> dict[str, float]:
        return {
            role: round(sum(cpu_seconds(pid) - self.before.get(pid, 0.0) for pid in pids), 1)
            for role, pids in self._all().items()
        }


def server_command(args: argparse.Namespace, port: int) -> list[str]:
    """One ASGI server process: daphne (Twisted + autobahn) or uvicorn (uvloop + websockets)."""
    bindir = Path(sys.executable).parent
    # --profile DIR: the servers' event-loop threads under cProfile (stopped with SIGINT).
    prefix = (
        [sys.executable, "-m", "cProfile", "-o", str(Path(args.profile) / f"server-{port}.prof")]
        if args.profile
        else []
    )
    if args.server == "uvicorn":
        server = [str(bindir / "uvicorn"), "--host", "127.0.0.1", "--port", str(port)]
        server += ["--no-access-log", "--log-level", "warning", "--lifespan", "off"]
    else:
        server = [str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
    return [*prefix, *server, "tessera.asgi:application"]


def run_client_processes(
    args: argparse.Namespace, setup: Path, ports: list[int], roles: dict[str, list[int]]
) -> Stats:
    """``--client-processes`` load generators, each with its share of the rooms; they all
    connect, then start together; their samples are merged."""
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--clients-part",
                f"{k}/{args.client_processes}",
                "--clients-input",
                str(setup),
                "--ports",
                ",".join(map(str, ports)),
                "--rounds",
                str(args.rounds),
                "--seed",
                str(args.seed),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(args.client_processes)
    ]
    for child in children:
        if child.stdout.readline().strip() != "connected":
            raise SystemExit("a client process did not connect")
    meter = CpuMeter(roles)
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    parts = [json.loads(child.communicate()[0].splitlines()[-1]) for child in children]
    stats = Stats()
    for part in parts:
        stats.latency_ms += part["latency_ms"]
        stats.phase_change_ms += part["phase_change_ms"]
        for kind, values in part["by_kind"].items():
            stats.by_kind.setdefault(kind, []).extend(values)
        stats.moves += part["moves"]
        stats.errors += part["errors"]
    stats.wall_s = max(part["wall_s"] for part in parts)  # type: ignore[attr-defined]
    stats.failed = [f for part in parts for f in part["failed"]]  # type: ignore[attr-defined]
    stats.meter = meter  # type: ignore[attr-defined]
    stats.clients_cpu_s = sum(part["cpu_s"] for part in parts)  # type: ignore[attr-defined]
    return stats


def client_part_main(args: argparse.Namespace) -> None:
    rooms = json.loads(Path(args.clients_input).read_text())
    k, n = (int(x) for x in args.clients_part.split("/"))
    ports = [int(p) for p in args.ports.split(",")]
    stats = asyncio.run(run_clients(rooms, ports, args.rounds, args.seed, (k, n)))
    cpu = time.process_time() - stats.cpu_at_start  # type: ignore[attr-defined]
    print(
        json.dumps(
            {
                "latency_ms": stats.latency_ms,
                "phase_change_ms": stats.phase_change_ms,
                "by_kind": stats.by_kind,
                "moves": stats.moves,
                "errors": stats.errors,
                "wall_s": stats.wall_s,  # type: ignore[attr-defined]
                "failed": stats.failed,  # type: ignore[attr-defined]
                # Per event kind; " *": the move that changed the phase (round start / round end).
                "by_kind_n_p50_p95_ms": {
                    kind: [len(v), *(round(float(np.percentile(v, q)), 1) for q in (50, 95))]
                    for kind, v in sorted(stats.by_kind.items())
                },
                "cpu_s": cpu,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1, help="server processes")
    parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")
    parser.add_argument(
        "--layer",
        choices=("settings", "list"),
        default="settings",
        help="the channel layer of the production settings (pub/sub), or channels_redis' list one",
    )
    parser.add_argument(
        "--switch-interval", type=float, default=0.0, help="the servers' GIL switch interval, ms"
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=1,
        help="load-generator processes (1: the clients run in this process)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--celery",
        default="",
        help="broker URL: run a Celery worker for the scoring (default: eager, in the servers)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="run the Celery worker at this nice level (batch scoring below the servers)",
    )
    parser.add_argument(
        "--warmup-rooms",
        type=int,
        default=0,
        help="rooms (of the same size) that race one unmeasured round before the measured ones",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="", help="folder for cProfile output of the servers")
    parser.add_argument("--output", default=str(ROOT / "bench" / "out" / "race_latency.json"))
    parser.add_argument("--setup-only", default="", help=argparse.SUPPRESS)
    parser.add_argument("--clients-part", default="", help=argparse.SUPPRESS)
    parser.add_argument("--clients-input", default="", help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_only:  # a child process: Django (Twisted's txaio) and the asyncio clients clash
        Path(args.setup_only).write_text(json.dumps(setup_data(args)))
        return
    if args.clients_part:  # a load-generator child of --client-processes
        client_part_main(args)
        return

    tmp = Path(tempfile.mkdtemp(prefix="race-bench-"))
    env = configure(tmp, args)
    subprocess.run(["redis-cli", "-u", args.redis, "flushdb"], check=True, capture_output=True)
    setup = tmp / "rooms.json"
    subprocess.run(
        [sys.executable, __file__, *sys.argv[1:], "--setup-only", str(setup)], env=env, check=True
    )
    rooms = json.loads(setup.read_text())
    warmup, rooms = rooms[len(rooms) - args.warmup_rooms :], rooms[: len(rooms) - args.warmup_rooms]
    if args.client_processes > 1:
        setup.write_text(json.dumps(rooms))  # what the load-generator processes read

    ports = [free_port() for _ in range(args.processes)]
    servers = [
        subprocess.Popen(
            server_command(args, port),
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / f"server-{port}.log", "w"),  # noqa: SIM115
        )
        for port in ports
    ]
    worker = None
    if args.celery:
        # As in production: scoring and STAPLE on a Celery worker, not in the server processes.
        worker = subprocess.Popen(
            [
                *(["nice", "-n", str(args.worker_nice)] if args.worker_nice else []),
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "tessera",
                "worker",
                "-P",
                "solo",
                "--loglevel",
                "WARNING",
            ],
            env={**env, "CELERY_BROKER_URL": args.celery},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "celery.log", "w"),  # noqa: SIM115
        )
    try:
        for port in ports:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            # Warm-up: the first request loads the URLconf and every view module.
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=30).read()  # noqa: S310
        if warmup:
            # One round in other rooms first, not measured: every server thread has opened its
            # pooled connection and run each query once, as on a server that has been up a while.
            asyncio.run(run_clients(warmup, ports, 1, args.seed + 1))
        roles = {"servers": [s.pid for s in servers], "worker": [worker.pid] if worker else []}
        if args.client_processes > 1:
            stats = run_client_processes(args, setup, ports, roles)
        else:
            meter = CpuMeter({**roles, "clients": [os.getpid()]})
            stats = asyncio.run(run_clients(rooms, ports, args.rounds, args.seed))
            stats.meter = meter  # type: ignore[attr-defined]
        cpu = stats.meter.spent()  # type: ignore[attr-defined]
        if args.client_processes > 1:
            cpu["clients"] = round(stats.clients_cpu_s, 1)  # type: ignore[attr-defined]
    finally:
        for server in [*servers, *([worker] if worker else [])]:
            server.send_signal(signal.SIGINT) if args.profile else server.terminate()
        for server in [*servers, *([worker] if worker else [])]:
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:  # open sockets keep a graceful close waiting
                server.kill()
                server.wait()

    lat = np.asarray(stats.latency_ms)
    result = {
        "players": args.players,
        "rooms": args.rooms,
        "rounds": args.rounds,
        "server": args.server,
        "processes": args.processes,
        "layer": args.layer,
        "client_processes": args.client_processes,
        "warmup_rooms": args.warmup_rooms,
        "database": "postgresql" if args.database_url else "sqlite",
        "celery_worker": bool(args.celery),
        "samples": int(lat.size),
        "moves": stats.moves,
        "wall_s": round(stats.wall_s, 1),
        "moves_per_s": round(stats.moves / stats.wall_s, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "max_ms": round(float(lat.max()), 1),
        "phase_change_samples": len(stats.phase_change_ms),
        "phase_change_p50_p95_ms": [
            round(float(np.percentile(stats.phase_change_ms, q)), 1) for q in (50, 95)
        ]
        if stats.phase_change_ms
        else None,
        "other_p50_p95_ms": [round(float(np.percentile(other, q)), 1) for q in (50, 95)]
        if (other := sorted(set_minus(stats.latency_ms, stats.phase_change_ms)))
        else None,
        # Per event kind; " *": the move that changed the phase (round start / round end).
        "by_kind_n_p50_p95_ms": {
            kind: [len(v), *(round(float(np.percentile(v, q)), 1) for q in (50, 95))]
            for kind, v in sorted(stats.by_kind.items())
        },
        "cpu_s": cpu,
        "errors": stats.errors[:5],
        "players_failed": len(stats.failed),
        "failures": stats.failed[:3],
        "cpus": os.cpu_count(),
        "logs": str(tmp),
    }
    print(json.dumps(result, indent=2))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
