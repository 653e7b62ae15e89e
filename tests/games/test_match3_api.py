"""Match-three API: start/resume, moves as labels, idempotent retries, permissions, withdrawal."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from annotate.models import Annotation, Image
from games import services
from games.models import GameSession, PlayerStats, ServedImage, SessionMove
from tests.factories import user_with_role
from tests.games.factories import playable_dataset

START = "/api/v1/match3/sessions/"


@pytest.fixture
def clock(monkeypatch):
    """Server clock under test control: each tick is a thoughtful 1.5 s answer."""
    now = [1_700_000_000_000]
    monkeypatch.setattr(services, "now_ms", lambda: now[0])
    return now


@pytest.fixture
def dataset(db):
    return playable_dataset(classes=("a", "b", "c"), plain=150)


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _start(client, dataset, level="tutorial"):
    return client.post(START, {"dataset": dataset.slug, "level": level}, format="json")


def _unjudged(view):
    return [t["tile_id"] for row in view["board"] for t in row if t and t["gem"] is None]


def _judge(tile, cls=0, key=None, client_ms=1500):
    return {
        "key": key or uuid.uuid4().hex,
        "type": "judge",
        "tile": tile,
        "class_index": cls,
        "client_ms": client_ms,
    }


def _moves(client, token, moves):
    return client.post(f"{START}{token}/moves/", {"moves": moves}, format="json")


@pytest.mark.django_db
def test_start_deals_a_board_without_gold_answers_and_resume_returns_it(volunteer, dataset):
    client = _client(volunteer)

    first = _start(client, dataset)
    again = _start(client, dataset)
    detail = client.get(f"{START}{first.json()['token']}/")

    assert first.status_code == 201
    body = first.json()
    view = body["view"]
    assert (view["rows"], view["cols"], view["status"]) == (6, 6, "playing")
    assert len(_unjudged(view)) == 36
    assert "gold" not in json.dumps(body)
    assert "queue" not in view
    assert again.json()["token"] == body["token"]
    assert again.json()["view"]["board"] == view["board"]
    assert detail.json()["view"]["board"] == view["board"]
    session = GameSession.objects.get()
    # Served = board + queue; the public ids are what the client sees, never database ids.
    assert ServedImage.objects.filter(session=session).count() == 36 + 20
    shown = {t["image_id"] for row in view["board"] for t in row if t}
    public = {str(p) for p in Image.objects.values_list("public_id", flat=True)}
    assert shown <= public


@pytest.mark.django_db
def test_a_judgement_is_stored_as_a_label_with_the_server_measured_time(volunteer, dataset, clock):
    client = _client(volunteer)
    view = _start(client, dataset).json()
    tile = _unjudged(view["view"])[0]
    clock[0] += 2500

    response = _moves(client, view["token"], [_judge(tile, cls=1, key="k1", client_ms=9999)])

    assert response.status_code == 200
    assert response.json()["results"][0]["outcome"] == "applied"
    label = Annotation.objects.get()
    assert (label.player_id, label.idempotency_key, label.source) == (volunteer.pk, "k1", "match3")
    assert label.label_class == dataset.classes.get(order=1)
    assert label.response_ms == 2500  # the client's claim cannot exceed what the server saw
    assert label.is_counted is True


@pytest.mark.django_db
def test_a_retried_batch_returns_the_stored_results_and_stores_nothing_twice(
    volunteer, dataset, clock
):
    client = _client(volunteer)
    view = _start(client, dataset).json()
    tiles = _unjudged(view["view"])[:3]
    clock[0] += 2000
    batch = [_judge(t, key=f"key-{t}") for t in tiles]

    first = _moves(client, view["token"], batch)
    retry = _moves(client, view["token"], batch)

    assert [r["outcome"] for r in first.json()["results"]] == ["applied"] * 3
    assert [r["outcome"] for r in retry.json()["results"]] == ["duplicate"] * 3
    assert [r["events"] for r in retry.json()["results"]] == [
        r["events"] for r in first.json()["results"]
    ]
    assert retry.json()["view"] == first.json()["view"]
    assert Annotation.objects.count() == 3
    assert SessionMove.objects.count() == 3
    assert GameSession.objects.get().state["judgements"] == 3


@pytest.mark.django_db
def test_a_batch_mixing_retried_and_new_moves_applies_only_the_new_ones(volunteer, dataset, clock):
    client = _client(volunteer)
    view = _start(client, dataset).json()
    tiles = _unjudged(view["view"])[:3]
    clock[0] += 2000
    first = _moves(client, view["token"], [_judge(tiles[0], key="m0")])

    mixed = _moves(client, view["token"], [_judge(tiles[0], key="m0"), _judge(tiles[1], key="m1")])

    assert [r["outcome"] for r in mixed.json()["results"]] == ["duplicate", "applied"]
    assert mixed.json()["results"][0]["events"] == first.json()["results"][0]["events"]
    assert sorted(Annotation.objects.values_list("idempotency_key", flat=True)) == ["m0", "m1"]
    assert list(SessionMove.objects.order_by("seq").values_list("key", "seq")) == [
        ("m0", 0),
        ("m1", 1),
    ]
    assert GameSession.objects.get().state["judgements"] == 2


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite's shared in-memory test database refuses concurrent writers ('table is "
    "locked') instead of waiting; this runs in the PostgreSQL pass of CI",
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_batch_store_each_label_once(volunteer, dataset, clock):
    token = _start(_client(volunteer), dataset).json()["token"]
    view = _client(volunteer).get(f"{START}{token}/").json()["view"]
    clock[0] += 2000
    batch = [_judge(t, key=f"c-{t}") for t in _unjudged(view)[:4]]
    outcomes, errors = [], []

    def submit():
        try:
            response = _moves(_client(volunteer), token, batch)
            outcomes.append(
                (response.status_code, [r["outcome"] for r in response.json()["results"]])
            )
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(outcomes) == sorted([(200, ["applied"] * 4)] + [(200, ["duplicate"] * 4)] * 3)
    assert Annotation.objects.filter(player=volunteer).count() == 4
    assert GameSession.objects.get().state["judgements"] == 4


@pytest.mark.django_db
def test_another_players_session_is_not_found_and_unchanged(volunteer, dataset, clock):
    token = _start(_client(volunteer), dataset).json()["token"]
    other = user_with_role("volunteer")
    tile = _unjudged(_client(volunteer).get(f"{START}{token}/").json()["view"])[0]

    read = _client(other).get(f"{START}{token}/")
    write = _moves(_client(other), token, [_judge(tile)])

    assert read.status_code == 403
    assert write.status_code == 403
    assert write.json()["message"] == "No such game."
    assert Annotation.objects.count() == 0
    assert GameSession.objects.get().state["judgements"] == 0


@pytest.mark.django_db
def test_only_players_may_use_the_game_api(donor_user, researcher, dataset):
    anonymous = APIClient().post(START, {"dataset": dataset.slug, "level": "tutorial"})

    assert anonymous.status_code == 401
    assert _start(_client(donor_user), dataset).status_code == 403
    assert _start(_client(researcher), dataset).status_code == 403
    assert GameSession.objects.count() == 0


@pytest.mark.django_db
def test_a_locked_level_cannot_be_started(volunteer, dataset):
    response = _start(_client(volunteer), dataset, level="level-2")

    assert response.status_code == 403
    assert response.json()["message"] == "This level is still locked."
    assert GameSession.objects.count() == 0


@pytest.mark.django_db
def test_a_withdrawn_images_label_is_rejected_with_a_clear_error(volunteer, dataset, clock):
    client = _client(volunteer)
    body = _start(client, dataset).json()
    tile = body["view"]["board"][0][0]
    Image.objects.filter(public_id=tile["image_id"]).update(status=Image.Status.WITHDRAWN)
    clock[0] += 2000

    response = _moves(client, body["token"], [_judge(tile["tile_id"], key="w1")])

    result = response.json()["results"][0]
    assert response.status_code == 200
    assert result["outcome"] == "rejected"
    assert (
        result["message"] == "This image was withdrawn by its donor; its label cannot be accepted."
    )
    assert Annotation.objects.count() == 0
    assert GameSession.objects.get().state["judgements"] == 0


@pytest.mark.django_db
def test_too_fast_answers_are_stored_flagged_and_counted_for_bot_detection(
    volunteer, dataset, clock
):
    client = _client(volunteer)
    body = _start(client, dataset).json()
    tile = _unjudged(body["view"])[0]
    clock[0] += 120  # faster than a human can judge (level minimum 400 ms)

    response = _moves(client, body["token"], [_judge(tile, key="fast")])

    assert [e["kind"] for e in response.json()["results"][0]["events"]] == ["too_fast"]
    label = Annotation.objects.get()
    assert (label.is_counted, label.response_ms) == (False, 120)
    assert PlayerStats.objects.get(player=volunteer).too_fast == 1
    assert response.json()["view"]["score"] == 0
    assert _unjudged(response.json()["view"])[0] == tile  # the tile waits for a real answer


@pytest.mark.django_db
def test_a_player_flagged_as_a_bot_has_labels_stored_uncounted(volunteer, dataset, clock):
    PlayerStats.objects.create(player=volunteer, flagged_as_bot=True)
    client = _client(volunteer)
    body = _start(client, dataset).json()
    clock[0] += 3000

    _moves(client, body["token"], [_judge(_unjudged(body["view"])[0])])

    assert Annotation.objects.get().is_counted is False


@pytest.mark.django_db
def test_bad_moves_are_rejected_without_changing_the_game(volunteer, dataset, clock):
    client = _client(volunteer)
    body = _start(client, dataset).json()
    clock[0] += 2000

    response = _moves(
        client,
        body["token"],
        [_judge(99999, key="a"), {"key": "b", "type": "swap", "tile": 0, "other": 1}],
    )
    invalid = _moves(client, body["token"], [{"key": "c", "type": "judge"}])
    duplicate_keys = _moves(client, body["token"], [_judge(0, key="d"), _judge(1, key="d")])

    assert [r["outcome"] for r in response.json()["results"]] == ["rejected", "rejected"]
    assert response.json()["results"][0]["message"] == "tile 99999 is not on the board"
    assert invalid.json()["results"][0]["outcome"] == "rejected"
    assert duplicate_keys.status_code == 400
    assert Annotation.objects.count() == 0
    assert GameSession.objects.get().state["judgements"] == 0


@pytest.mark.django_db
def test_a_session_resumes_after_a_reload_and_finishing_the_level_completes_it(
    volunteer, dataset, clock
):
    client = _client(volunteer)
    token = _start(client, dataset).json()["token"]
    for _ in range(40):
        view = client.get(f"{START}{token}/").json()["view"]  # a reload between every move
        if view["status"] != "playing":
            break
        clock[0] += 1500
        _moves(client, token, [_judge(_unjudged(view)[0], cls=0)])

    session = GameSession.objects.get()
    assert session.status == "won"
    assert session.ended_at is not None
    assert Annotation.objects.filter(is_counted=True).count() == session.state["judgements"]
    stats = PlayerStats.objects.get(player=volunteer)
    assert stats.levels_completed == 1
    assert "first_level" in set(volunteer.badges.values_list("badge_id", flat=True))
    # The next level is open now, and a new tutorial session can start.
    assert _start(client, dataset, level="level-1").status_code == 201
    assert _start(client, dataset).json()["token"] != token


MOVE = {"key": "k1", "type": "judge", "tile": 3, "class_index": 2, "client_ms": 900}
MOVES_BODIES = [
    {"moves": [MOVE]},
    {
        "moves": [
            MOVE,
            {"key": "k2", "type": "swap", "tile": 0, "other": 1},
            {"key": 7, "type": "quit"},
        ]
    },
    {"moves": [{"key": "  k3 ", "type": "judge", "tile": 0, "class_index": 7}]},
    {"moves": [{**MOVE, "class_index": None, "client_ms": None}]},
    {"moves": [{**MOVE, "key": None}]},
    {"moves": [{"key": "k4", "type": "quit", "other": 2}]},
    {},
    {"moves": None},
    {"moves": {"key": "k"}},
    {"moves": []},
    {"moves": [MOVE] * 61},
    {"moves": ["judge"]},
    {"moves": [{"type": "judge"}]},
    {"moves": [{**MOVE, "key": ""}]},
    {"moves": [{**MOVE, "key": "   "}]},
    {"moves": [{**MOVE, "key": "x" * 65}]},
    {"moves": [{**MOVE, "key": ["k"]}]},
    {"moves": [{**MOVE, "key": True}]},
    {"moves": [{**MOVE, "type": "jump"}]},
    {"moves": [{"key": "k"}]},
    {"moves": [{**MOVE, "tile": -1}]},
    {"moves": [{**MOVE, "class_index": 8}]},
    {"moves": [{**MOVE, "client_ms": "soon"}]},
    {"moves": [{**MOVE, "other": True}]},
    {"moves": [MOVE, {**MOVE, "tile": 1.5}]},
]


@pytest.mark.parametrize("body", MOVES_BODIES)
def test_moves_are_checked_as_the_documented_serializer_checks_them(body):
    """The moves API checks a batch by hand (DRF took 0.6 ms for 20 moves); it must accept and
    refuse what its documented serializer does, with the same messages."""
    from rest_framework.exceptions import ValidationError

    from games.apis import Match3MovesApi, moves_from_request

    documented = Match3MovesApi.InputSerializer(data=body)
    try:
        moves = moves_from_request(body)
    except ValidationError as exc:
        assert not documented.is_valid()
        # As the API sends them: messages per field (and per move, by position).
        assert json.loads(json.dumps(exc.detail)) == json.loads(json.dumps(documented.errors))
        return
    assert documented.is_valid(), documented.errors
    expected = [
        services.MoveInput(
            key=m["key"],
            kind=m["type"],
            tile=m.get("tile"),
            other=m.get("other"),
            class_index=m.get("class_index"),
            client_ms=m.get("client_ms"),
        )
        for m in documented.validated_data["moves"]
    ]
    assert moves == expected
