"""The race sockets through the ASGI application exactly as served (origin check, session auth).

Nothing here depends on the in-memory channel layer: the CI's second run repeats these tests on
the Redis layer, where other test processes share the server, so every wait looks for the message
it needs and skips what it does not.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from annotate.models import Annotation
from games.contour.models import RaceEntry, RaceSeat
from tessera.asgi import application
from tests.factories import user_with_role
from tests.games.contour.factories import FAR, NEAR, race_dataset

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 20  # generous: a loaded CI machine is slow; these are not timing assertions


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _connect(path, user=None, origin=b"http://127.0.0.1"):
    headers = [(b"origin", origin)]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(_cookie)(user)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected, code


async def _until(communicator, predicate, limit=50):
    for _ in range(limit):
        message = await communicator.receive_json_from(timeout=TIMEOUT)
        if predicate(message):
            return message
    raise AssertionError("expected message never came")


def _phase(phase):
    return lambda m: m.get("type") in ("room", "you") and m["view"]["phase"] == phase


async def test_anonymous_sockets_are_refused():
    for path in ("/ws/race/lobby/", "/ws/race/room/6f1c3d7e-0000-4000-8000-000000000000/"):
        communicator, connected, code = await _connect(path)
        await communicator.disconnect()
        assert (connected, code) == (False, 4401)


async def test_foreign_origin_is_refused():
    user = await sync_to_async(user_with_role)("volunteer")
    communicator, connected, _ = await _connect(
        "/ws/race/lobby/", user, origin=b"http://evil.example"
    )
    await communicator.disconnect()
    assert connected is False


async def test_non_players_and_strangers_are_refused():
    donor = await sync_to_async(user_with_role)("donor")
    communicator, connected, code = await _connect("/ws/race/lobby/", donor)
    await communicator.disconnect()
    assert (connected, code) == (False, 4403)

    player = await sync_to_async(user_with_role)("volunteer")
    room = "/ws/race/room/6f1c3d7e-0000-4000-8000-000000000000/"
    communicator, connected, code = await _connect(room, player)
    await communicator.disconnect()
    assert (connected, code) == (False, 4403)


async def test_two_players_race_one_round_over_websockets():
    a = await sync_to_async(user_with_role)("volunteer", username="ana")
    b = await sync_to_async(user_with_role)("volunteer", username="ben")
    dataset = await sync_to_async(race_dataset)(plain=0, gold=3)

    lobby_a, ok_a, _ = await _connect("/ws/race/lobby/", a)
    lobby_b, ok_b, _ = await _connect("/ws/race/lobby/", b)
    assert ok_a and ok_b
    await lobby_a.send_json_to({"type": "queue", "dataset": dataset.slug})
    queued = await _until(lobby_a, lambda m: m["type"] == "queued")
    assert queued["waiting"] == 1
    await lobby_b.send_json_to({"type": "queue", "dataset": dataset.slug})
    matched_b = await _until(lobby_b, lambda m: m["type"] == "matched")
    token = matched_b["room"]
    seated = await sync_to_async(
        lambda: set(RaceSeat.objects.filter(room__token=token).values_list("player_id", flat=True))
    )()
    assert seated == {a.pk, b.pk}
    await _until(lobby_a, lambda m: m["type"] == "matched" and m["room"] == token)
    await lobby_a.disconnect()
    await lobby_b.disconnect()

    path = f"/ws/race/room/{token}/"
    room_a, _, _ = await _connect(path, a)
    room_b, _, _ = await _connect(path, b)
    first = await _until(room_a, lambda m: m["type"] == "you")
    assert first["view"]["phase"] == "lobby" and first["names"][str(b.pk)] == b.public_name()

    await room_a.send_json_to({"type": "ready"})
    await room_b.send_json_to({"type": "ready"})
    # The server's timer ends the countdown: nobody sends anything to make it happen.
    drawing = await _until(room_b, _phase("drawing"))
    assert drawing["meta"]["image_url"].startswith("/datasets/images/")
    assert drawing["meta"]["structure"] == "Skin lesion"
    await _until(room_a, _phase("drawing"))

    await room_a.send_json_to({"type": "progress"})
    await room_a.send_json_to({"type": "submit", "points": NEAR, "closed": True})
    await _until(
        room_a,
        lambda m: (
            m["type"] == "room" and any(e.get("progress") == "submitted" for e in m["events"])
        ),
    )
    await room_a.send_json_to({"type": "sync"})
    own = await _until(room_a, lambda m: m["type"] == "you")
    assert [p for p in own["view"]["players"] if p["you"]][0]["contour"]
    seen = await _until(
        room_b,
        lambda m: (
            m["type"] == "room" and any(e.get("progress") == "submitted" for e in m["events"])
        ),
    )
    assert all("contour" not in p for p in seen["view"]["players"])  # progress, never contours

    await room_b.send_json_to({"type": "submit", "points": [[1, 1], [30, 1]], "closed": False})
    rejected = await _until(room_b, lambda m: m["type"] == "private")
    assert rejected["code"] == "too_few_vertices"
    await room_b.send_json_to({"type": "submit", "points": FAR, "closed": True})

    results = await _until(room_a, lambda m: m["type"] == "room" and m["view"]["scored"])
    ranking = results["view"]["ranking"]
    assert ranking[0][0] == str(a.pk) and ranking[0][1] > 0 and ranking[1] == [str(b.pk), 0]
    assert results["view"]["reference"] == "gold"
    assert results["meta"]["consensus_outline"]
    await _until(room_b, lambda m: m["type"] == "room" and m["view"]["scored"])

    stored = await sync_to_async(
        lambda: sorted(Annotation.objects.values_list("player_id", "source"))
    )()
    assert stored == sorted([(a.pk, "contour"), (b.pk, "contour")])
    scores = await sync_to_async(
        lambda: dict(RaceEntry.objects.values_list("player_id", "score"))
    )()
    assert scores[a.pk] == ranking[0][1]
    await room_a.disconnect()
    await room_b.disconnect()


async def test_a_dropped_socket_resumes_the_round():
    from tessera.demo_segmentation import seed_demo_races

    a = await sync_to_async(user_with_role)("volunteer")
    dataset = await sync_to_async(race_dataset)(plain=0, gold=3)
    await sync_to_async(seed_demo_races)(dataset=dataset)  # earlier races: ghosts to race
    lobby, _, _ = await _connect("/ws/race/lobby/", a)
    await lobby.send_json_to({"type": "solo", "dataset": dataset.slug})
    token = (await _until(lobby, lambda m: m["type"] == "matched"))["room"]
    await lobby.disconnect()

    room, connected, _ = await _connect(f"/ws/race/room/{token}/", a)
    assert connected
    await _until(room, lambda m: m["type"] == "you")
    await room.send_json_to({"type": "unknown"})
    assert (await _until(room, lambda m: m["type"] == "error"))["message"]
    await room.disconnect()

    again, connected, _ = await _connect(f"/ws/race/room/{token}/", a)
    resumed = await _until(again, lambda m: m["type"] == "you")
    me = [p for p in resumed["view"]["players"] if p["you"]][0]
    assert connected and me["connected"] is True
    await again.disconnect()


async def test_a_socket_that_missed_a_broadcast_resyncs_from_the_room(monkeypatch):
    """A group message the channel layer lost (channels_redis can lose one when another socket
    of the process closes mid-receive) reaches the page anyway: a quiet socket reads the room."""
    from games.contour import consumers, services

    a = await sync_to_async(user_with_role)("volunteer")
    b = await sync_to_async(user_with_role)("volunteer")
    dataset = await sync_to_async(race_dataset)(plain=0, gold=3)
    lobby_a, _, _ = await _connect("/ws/race/lobby/", a)
    lobby_b, _, _ = await _connect("/ws/race/lobby/", b)
    await lobby_a.send_json_to({"type": "queue", "dataset": dataset.slug})
    await _until(lobby_a, lambda m: m["type"] == "queued")
    await lobby_b.send_json_to({"type": "queue", "dataset": dataset.slug})
    token = (await _until(lobby_b, lambda m: m["type"] == "matched"))["room"]
    await lobby_a.disconnect()
    await lobby_b.disconnect()

    monkeypatch.setattr(consumers, "RESYNC_S", 0.2)
    path = f"/ws/race/room/{token}/"
    room_a, _, _ = await _connect(path, a)
    room_b, _, _ = await _connect(path, b)
    before = await _until(room_a, lambda m: m["type"] == "you")
    monkeypatch.setattr(services, "_broadcast", lambda *args, **kwargs: None)  # all lost

    await room_b.send_json_to({"type": "ready"})

    def b_ready(m):
        players = {p["player_id"]: p for p in m.get("view", {}).get("players", [])}
        return m["type"] == "you" and players[str(b.pk)]["ready"] is True

    resynced = await _until(room_a, b_ready)
    assert resynced["view"]["seq"] > before["view"]["seq"]
    await room_a.disconnect()
    await room_b.disconnect()


def test_the_sockets_of_a_room_tick_one_after_another():
    """Only the first connected player's socket ticks the room on time; the others wait a step
    per place, so the first tick's broadcast re-arms them before they run."""
    from games.contour.consumers import RaceRoomConsumer
    from games.contour.services import connected_players

    view = {
        "seq": 3,
        "players": [
            {"player_id": pid, "connected": connected, "is_ghost": ghost}
            for pid, connected, ghost in [
                ("g1", True, True),
                ("7", False, False),
                ("8", True, False),
                ("9", True, False),
            ]
        ],
    }
    assert connected_players({"view": view}) == ["8", "9"]  # ghosts and the absent do not tick
    sockets = {}
    for pid in (7, 8, 9):
        sockets[pid] = RaceRoomConsumer()
        sockets[pid].user_id = pid
        sockets[pid]._passed_on(3, connected_players({"view": view}))
    assert [sockets[pid].rank for pid in (8, 9)] == [0, 1]
    assert sockets[7].rank == 2  # reconnecting: after everyone who is here
