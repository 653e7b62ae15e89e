"""Contour race services: lobby, rounds, storage, scoring, ghosts, withdrawal, the sweep."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from annotate.consensus import contour_points
from annotate.models import Annotation, ConsensusMask, Image
from consent.models import Consent
from consent.services.withdrawal import consent_withdraw
from games.contour import selectors, services
from games.contour.models import RaceEntry, RaceRoom, RaceSeat, RaceTicket
from games.contour.tasks import race_score_task, race_sweep
from games.engine import contour_race as engine
from tests.factories import user_with_role
from tests.games.contour.factories import FAR, GOLD, NEAR, race_dataset

pytestmark = pytest.mark.django_db(transaction=True)


def msg(kind, **kw):
    return services.RoomMessage(kind=kind, **kw)


def state_of(token) -> engine.RoomState:
    return engine.RoomState.from_dict(RaceRoom.objects.get(token=token).state)


@pytest.fixture
def pair():
    return user_with_role("volunteer", username="ana"), user_with_role("volunteer", username="ben")


def submit(token, player, points):
    return services.room_message(
        token=token, player_id=player.pk, message=msg("submit", points=points, closed=True)
    )


def matched_room(dataset, a, b):
    first = services.lobby_queue(player_id=a.pk, slug=dataset.slug)
    second = services.lobby_queue(player_id=b.pk, slug=dataset.slug)
    assert first.room is None and second.room is not None
    return second.room


def start_drawing(token, a, b, clock):
    for p in (a, b):
        services.room_connect(token=token, player_id=p.pk)
    for p in (a, b):
        services.room_message(token=token, player_id=p.pk, message=msg("ready"))
    clock.advance(1)
    services.room_tick(token=token)
    assert state_of(token).phase == engine.DRAWING


def test_two_players_are_matched_race_and_are_scored_against_gold(pair, clock):
    a, b = pair
    dataset = race_dataset(plain=0, gold=3)
    token = matched_room(dataset, a, b)
    assert set(RaceSeat.objects.filter(room__token=token).values_list("player_id", flat=True)) == {
        a.pk,
        b.pk,
    }
    assert not RaceTicket.objects.exists()
    start_drawing(token, a, b, clock)

    clock.advance(4_000)
    services.room_message(token=token, player_id=a.pk, message=msg("progress"))
    clock.advance(6_000)
    submit(token, a, NEAR)
    clock.advance(10_000)
    submit(token, b, FAR)

    state = state_of(token)
    assert state.phase == engine.RESULTS and state.scored and state.reference_kind == "gold"
    entries = {e.player_id: e for e in RaceEntry.objects.select_related("annotation")}
    # Drawing began 1 ms before the clock was first advanced.
    assert (entries[a.pk].started_ms, entries[a.pk].elapsed_ms) == (4_001, 10_001)
    assert entries[a.pk].dice > 0.85 and entries[b.pk].dice == 0.0
    assert entries[a.pk].score > 850 and entries[b.pk].score == 0
    assert entries[a.pk].reference == "gold"
    # Stored as contour annotations in image pixel coordinates, readable by consensus.
    ann = entries[a.pk].annotation
    assert ann.source == Annotation.Source.CONTOUR_RACE and ann.is_counted
    assert sorted(contour_points(ann.geometry).tolist()) == sorted(NEAR)
    assert ann.idempotency_key == f"race:{token.hex}:1"
    # The consensus task ran after the round: two contours make a STAPLE mask.
    assert ConsensusMask.objects.get(image=ann.image).n_contours == 2


def test_others_contours_stay_hidden_until_the_results(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)
    submit(token, a, NEAR)

    seen_by_b = services.room_message(token=token, player_id=b.pk, message=msg("sync")).payload
    others = {p["player_id"]: p for p in seen_by_b["view"]["players"]}
    assert others[str(a.pk)]["progress"] == "submitted"
    assert "contour" not in others[str(a.pk)]
    assert "47.0" not in str(seen_by_b)

    submit(token, b, GOLD)
    after = services.room_message(token=token, player_id=b.pk, message=msg("sync")).payload
    revealed = {p["player_id"]: p for p in after["view"]["players"]}
    assert revealed[str(a.pk)]["contour"] is not None
    assert revealed[str(a.pk)]["score"] > 0
    assert after["meta"]["consensus_outline"]  # the overlay: own outline vs reference


def test_an_invalid_contour_is_refused_with_a_reason_and_nothing_is_stored(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)

    reply = services.room_message(
        token=token,
        player_id=a.pk,
        message=msg("submit", points=[[10, 10], [40, 10], [40, 30]], closed=False),
    )
    bowtie = services.room_message(
        token=token,
        player_id=a.pk,
        message=msg("submit", points=[[10, 10], [40, 40], [40, 10], [10, 40]], closed=True),
    )
    outside = services.room_message(
        token=token,
        player_id=a.pk,
        message=msg("submit", points=[[10, 10], [400, 10], [400, 30]], closed=True),
    )

    assert [p["code"] for p in reply.private] == ["open_contour"]
    assert [p["code"] for p in bowtie.private] == ["self_intersecting"]
    assert [p["code"] for p in outside.private] == ["out_of_bounds"]
    assert not Annotation.objects.exists()
    assert state_of(token).player(str(a.pk)).progress == engine.WAITING


def test_a_second_submission_stores_nothing_more(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)
    submit(token, a, NEAR)

    again = services.room_message(
        token=token, player_id=a.pk, message=msg("submit", points=GOLD, closed=True)
    )

    assert [p["code"] for p in again.private] == ["already_submitted"]
    assert Annotation.objects.filter(player=a).count() == 1


def test_a_player_who_leaves_does_not_stall_the_room_and_can_resume(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)
    services.room_disconnect(token=token, player_id=b.pk)
    view = services.room_connect(token=token, player_id=b.pk).payload["view"]
    assert view["phase"] == "drawing" and view["round"]["width"] == 64  # resumed mid-round
    services.room_disconnect(token=token, player_id=b.pk)

    submit(token, a, NEAR)

    state = state_of(token)
    assert state.phase == engine.RESULTS
    assert state.player(str(b.pk)).progress == engine.TIMED_OUT


def test_strangers_have_no_seat(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    stranger = user_with_role("volunteer")

    with pytest.raises(services.NotPermitted):
        services.room_connect(token=token, player_id=stranger.pk)
    with pytest.raises(services.NotPermitted):
        services.room_message(token=token, player_id=stranger.pk, message=msg("ready"))


def test_a_lone_player_races_ghosts_scored_against_leave_one_out_consensus(pair, clock):
    a, b = pair
    dataset = race_dataset(plain=1, gold=0)
    # Two earlier players raced the one plain image.
    token = matched_room(dataset, a, b)
    start_drawing(token, a, b, clock)
    clock.advance(5_000)
    submit(token, a, GOLD)
    clock.advance(3_000)
    submit(token, b, NEAR)
    assert state_of(token).reference_kind == "consensus"
    # LOO: each is judged by the other's contour only.
    dice = dict(RaceEntry.objects.values_list("player_id", "dice"))
    assert dice[a.pk] == pytest.approx(dice[b.pk]) and 0.85 < dice[a.pk] < 1.0

    solo = user_with_role("volunteer", username="cleo")
    room = services.lobby_solo(player_id=solo.pk, slug=dataset.slug)
    services.room_connect(token=room, player_id=solo.pk)
    services.room_message(token=room, player_id=solo.pk, message=msg("ready"))
    state = state_of(room)
    assert state.phase == engine.COUNTDOWN
    assert sorted(p.player_id for p in state.players if p.is_ghost) == ["ghost-1", "ghost-2"]
    assert "ana" not in str(RaceRoom.objects.get(token=room).names)  # ghosts are anonymous

    clock.advance(1)
    services.room_tick(token=room)  # drawing
    clock.advance(5_500)
    services.room_tick(token=room)
    # Ghosts replay the recorded timings: ana's contour came at 5 s, ben's at 8 s.
    ghosts = sorted(p.progress for p in state_of(room).players if p.is_ghost)
    assert ghosts == ["submitted", "waiting"]
    submit(room, solo, NEAR)
    clock.advance(10_000)
    services.room_tick(token=room)

    final = state_of(room)
    assert final.phase == engine.RESULTS and final.scored
    scores = {p.player_id: p.dice for p in final.players}
    assert scores["ghost-1"] is not None and scores["ghost-2"] is not None
    # Cleo is judged by the consensus of ana's and ben's contours, not her own.
    assert scores[str(solo.pk)] == pytest.approx(RaceEntry.objects.get(player=solo).dice)
    assert RaceEntry.objects.filter(player=solo).count() == 1  # ghosts store nothing


def test_without_earlier_races_a_lone_player_is_told_there_are_no_ghosts(settings, clock):
    solo = user_with_role("volunteer")
    dataset = race_dataset(plain=2, gold=0)

    with pytest.raises(services.ApplicationError, match="no ghosts to race yet"):
        services.lobby_solo(player_id=solo.pk, slug=dataset.slug)
    assert not RaceRoom.objects.exists()
    # Waiting in the queue does not end in an empty ghost room either: they wait for people.
    settings.RACE_LOBBY_WAIT_S = 0
    assert services.lobby_queue(player_id=solo.pk, slug=dataset.slug).room is None


def test_withdrawn_and_retired_images_are_never_raced(pair, clock):
    a, b = pair
    dataset = race_dataset(plain=2, gold=0)
    consent = Consent.objects.get()
    Image.objects.filter(dataset=dataset, gold_mask__isnull=True).update(
        status=Image.Status.RETIRED
    )
    token = matched_room(dataset, a, b)
    for p in (a, b):
        services.room_connect(token=token, player_id=p.pk)
        services.room_message(token=token, player_id=p.pk, message=msg("ready"))
    assert state_of(token).phase == engine.LOBBY  # nothing left to race

    Image.objects.filter(dataset=dataset).update(status=Image.Status.ACTIVE)
    consent_withdraw(consent_id=consent.pk, actor_id=None, channel="web")
    for p in (a, b):
        services.room_message(token=token, player_id=p.pk, message=msg("ready"))
    assert state_of(token).phase == engine.LOBBY


def test_a_withdrawal_mid_round_keeps_the_contour_out_of_the_data(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)
    Image.objects.update(status=Image.Status.WITHDRAWN)

    submit(token, a, NEAR)

    assert not Annotation.objects.exists()


def test_an_image_that_retires_mid_round_still_takes_the_contour(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)
    image_pk = RaceRoom.objects.get(token=token).round_meta["image_pk"]
    Image.objects.filter(pk=image_pk).update(status=Image.Status.RETIRED)  # another room's STAPLE

    submit(token, a, NEAR)

    annotation = Annotation.objects.get(player=a)
    assert annotation.image_id == image_pk and annotation.geometry["closed"]
    assert RaceEntry.objects.get(player=a, annotation=annotation).round_no == 1


@pytest.fixture
def stored_round(pair, clock):
    """A room whose player a has a stored contour, and that contour's event replayed (as after a
    state restored by hand): (room, a, a's annotation, the replayed event)."""
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)
    submit(token, a, NEAR)
    stored = Annotation.objects.get(player=a)
    again = engine.ContourSubmitted(
        player_id=str(a.pk),
        round_no=1,
        image_id=str(stored.image.public_id),
        started_ms=1,
        elapsed_ms=2,
        points=((1.0, 1.0), (9.0, 1.0), (9.0, 9.0)),
        repairs=(),
    )
    return RaceRoom.objects.get(token=token), a, stored, again


def test_a_contour_stored_twice_stays_one_annotation_and_one_entry(stored_round):
    room, a, first, again = stored_round

    services._contour_store(room, again)

    assert list(Annotation.objects.filter(player=a)) == [first]
    assert RaceEntry.objects.get(player=a).annotation == first
    assert sorted(contour_points(first.geometry).tolist()) == sorted(NEAR)


def test_a_contour_whose_entry_is_missing_gets_it_back(stored_round):
    room, a, stored, again = stored_round
    RaceEntry.objects.filter(player=a).delete()  # a half-stored pair

    services._contour_store(room, again)

    assert list(Annotation.objects.filter(player=a)) == [stored]
    assert RaceEntry.objects.get(player=a, round_no=1).annotation == stored


def test_an_image_sent_to_review_mid_round_keeps_the_contour_out(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)
    Image.objects.update(status=Image.Status.QUARANTINED)

    submit(token, a, NEAR)

    assert not Annotation.objects.exists() and not RaceEntry.objects.exists()


def test_the_sweep_finishes_a_round_nobody_is_connected_to(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)
    submit(token, a, NEAR)
    services.room_disconnect(token=token, player_id=a.pk)
    services.room_disconnect(token=token, player_id=b.pk)
    assert state_of(token).phase == engine.DRAWING  # waits for the deadline: b may come back

    clock.advance(60_001)
    race_sweep.delay()

    state = state_of(token)
    assert state.phase == engine.RESULTS and state.scored
    assert RaceEntry.objects.get(player=a).score > 0


def test_the_sweep_scores_a_round_whose_scoring_task_was_lost(pair, clock, monkeypatch):
    a, b = pair
    token = matched_room(race_dataset(plain=0, gold=3), a, b)
    start_drawing(token, a, b, clock)
    with monkeypatch.context() as m:  # the broker drops the round's scoring task
        m.setattr(race_score_task, "delay_on_commit", lambda *args: None)
        submit(token, a, NEAR)
        submit(token, b, FAR)
    assert state_of(token).phase == engine.RESULTS and not state_of(token).scored

    assert race_sweep.delay().get()["rescored"] == 0  # a task may still be on its way
    RaceRoom.objects.filter(token=token).update(updated_at=timezone.now() - timedelta(minutes=2))
    assert race_sweep.delay().get()["rescored"] == 1

    assert state_of(token).scored
    assert RaceEntry.objects.get(player=a).score > RaceEntry.objects.get(player=b).score
    assert race_sweep.delay().get()["rescored"] == 0


def test_the_lobby_gives_ghosts_to_a_player_who_waited_too_long(pair, settings, clock):
    a, b = pair
    dataset = race_dataset(plain=1, gold=0)
    token = matched_room(dataset, a, b)  # an earlier race leaves contours to replay
    start_drawing(token, a, b, clock)
    submit(token, a, GOLD)
    submit(token, b, NEAR)
    settings.RACE_LOBBY_WAIT_S = 0
    solo = user_with_role("volunteer")

    result = services.lobby_queue(player_id=solo.pk, slug=dataset.slug)

    assert result.room is not None
    assert RaceRoom.objects.get(token=result.room).state["config"]["ghost_wait_ms"] == 0


def test_next_round_waits_for_every_racer(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=2, gold=2), a, b)
    start_drawing(token, a, b, clock)
    submit(token, a, GOLD)
    submit(token, b, NEAR)
    assert state_of(token).phase == engine.RESULTS

    services.room_message(token=token, player_id=a.pk, message=msg("next"))
    assert state_of(token).phase == engine.RESULTS  # b is still reading the results

    services.room_message(token=token, player_id=b.pk, message=msg("next"))
    assert state_of(token).phase in (engine.LOBBY, engine.COUNTDOWN)


def test_the_lobby_offers_a_rejoin_only_to_a_player_who_did_not_leave(pair, clock):
    from games.contour.selectors import open_room_of

    a, b = pair
    token = matched_room(race_dataset(plain=2, gold=2), a, b)
    assert open_room_of(player_id=a.pk).token == token

    services.room_connect(token=token, player_id=a.pk)
    services.room_message(token=token, player_id=a.pk, message=msg("leave"))

    assert open_room_of(player_id=a.pk) is None
    assert open_room_of(player_id=b.pk).token == token


@pytest.mark.parametrize(
    "points", [[1, {"a": 2}, [3]], "not a list", [[0, 0], [1, "x"], [2, 2]], [[0, 0, 0]] * 3]
)
def test_malformed_points_are_rejected_with_a_reason(pair, clock, points):
    a, b = pair
    token = matched_room(race_dataset(plain=2, gold=2), a, b)
    start_drawing(token, a, b, clock)

    reply = submit(token, a, points)

    assert [e["kind"] for e in reply.private] == ["submission_rejected"]
    assert reply.private[0]["message"]
    assert state_of(token).player(str(a.pk)).progress != engine.SUBMITTED
    assert not Annotation.objects.exists()


def test_a_withdrawal_drops_the_images_outlines_from_race_rooms(pair, clock):
    a, b = pair
    dataset = race_dataset(plain=2, gold=2)
    token = matched_room(dataset, a, b)
    start_drawing(token, a, b, clock)
    room = RaceRoom.objects.get(token=token)
    assert room.round_meta["reference_outline"]
    reference = Image.objects.get(public_id=state_of(token).round.reference_image_id)
    raced = Image.objects.get(pk=room.round_meta["image_pk"])

    consent_withdraw(consent_id=reference.consent_id, actor_id=None, channel="admin")

    meta = RaceRoom.objects.get(token=token).round_meta
    assert meta["reference_outline"] is None and meta["reference_url"] is None
    if raced.consent_id == reference.consent_id:
        assert meta["image_url"] is None


def test_a_pick_draws_from_the_candidates_with_the_rooms_generator(pair):
    a, b = pair
    dataset = race_dataset(plain=3, gold=0)
    candidates = selectors.round_candidates(dataset=dataset, player_ids=[a.pk, b.pk])
    images = list(candidates.order_by("pk"))
    assert len(images) == 3

    class Fixed:  # the index the room's generator draws
        def __init__(self, k):
            self.k = k

        def integers(self, n):
            assert n == len(images)
            return self.k

    assert [selectors.pick(candidates, Fixed(k)) for k in range(3)] == images
    assert selectors.pick(candidates.none(), Fixed(0)) is None


def test_a_pick_is_one_read_and_brings_what_the_round_needs(pair, django_assert_num_queries):
    """No count and offset, no second read of the drawn image: a set that shrinks meanwhile (a
    worker retires an image) can neither fail the move nor be read twice."""
    a, b = pair
    dataset = race_dataset(plain=3, gold=0)
    candidates = selectors.round_candidates(dataset=dataset, player_ids=[a.pk, b.pk])
    # The candidate that the generator's first draw over the 3 of them, in id order, names.
    expected = list(candidates.order_by("pk"))[int(np.random.default_rng(0).integers(3))]
    with django_assert_num_queries(1):
        image = selectors.pick(candidates, np.random.default_rng(0))
        drawn = (image.pk, image.public_id, image.width, image.height)
    assert drawn == (expected.pk, expected.public_id, expected.width, expected.height)
    Image.objects.filter(pk=expected.pk).update(status=Image.Status.RETIRED)
    for seed in range(10):
        assert selectors.pick(candidates, np.random.default_rng(seed)) != expected
    Image.objects.filter(dataset=dataset).update(status=Image.Status.RETIRED)
    assert selectors.pick(candidates, np.random.default_rng(0)) is None


def _start_queries(token, a, b):
    """The queries of the move that starts the round (the second player's ready)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for p in (a, b):
        services.room_connect(token=token, player_id=p.pk)
    services.room_message(token=token, player_id=a.pk, message=msg("ready"))
    with CaptureQueriesContext(connection) as queries:
        services.room_message(token=token, player_id=b.pk, message=msg("ready"))
    assert state_of(token).phase in (engine.COUNTDOWN, engine.DRAWING)
    return len(queries)


def test_the_first_round_is_drawn_with_the_room_and_starts_on_that_image(pair, clock):
    a, b = pair
    dataset = race_dataset(plain=4, gold=2)
    token = matched_room(dataset, a, b)
    room = RaceRoom.objects.get(token=token)
    planned = room.round_meta["next"]
    # The draw the start itself would make (same generator: the room's seed and the round).
    now = services._round_plan(seed=room.seed, dataset=dataset, humans=[a.pk, b.pk], round_no=1)
    assert planned == now.prepared() and planned["round_no"] == 1
    assert planned["reference_pk"] is not None

    drawn_ahead = _start_queries(token, a, b)
    clock.advance(1)
    services.room_tick(token=token)
    state = state_of(token)
    assert state.round.image_id == planned["image_public_id"]
    assert "next" not in RaceRoom.objects.get(token=token).round_meta

    # The same start without the plan (as for a room made before plans existed) draws the same
    # image, with more of the work inside the player's move.
    c, d = user_with_role("volunteer"), user_with_role("volunteer")
    other = matched_room(dataset, c, d)
    RaceRoom.objects.filter(token=other).update(round_meta={})
    drawn_now = _start_queries(other, c, d)
    assert drawn_ahead < drawn_now


def test_a_round_drawn_ahead_whose_image_left_play_is_drawn_again(pair, clock):
    a, b = pair
    dataset = race_dataset(plain=4, gold=0)
    token = matched_room(dataset, a, b)
    planned = RaceRoom.objects.get(token=token).round_meta["next"]
    Image.objects.filter(pk=planned["image_pk"]).update(status=Image.Status.RETIRED)
    start_drawing(token, a, b, clock)
    raced = Image.objects.get(public_id=state_of(token).round.image_id)
    assert raced.pk != planned["image_pk"] and raced.status == Image.Status.ACTIVE


def test_the_scoring_task_draws_the_next_round_ahead(pair, clock):
    a, b = pair
    token = matched_room(race_dataset(plain=3, gold=3), a, b)
    start_drawing(token, a, b, clock)
    first = state_of(token).round.image_id
    submit(token, a, GOLD)
    submit(token, b, NEAR)
    state = state_of(token)
    assert state.phase == engine.RESULTS and state.scored
    planned = RaceRoom.objects.get(token=token).round_meta["next"]
    assert planned["round_no"] == 2 and planned["image_public_id"] != first

    for p in (a, b):
        services.room_message(token=token, player_id=p.pk, message=msg("next"))
    clock.advance(1)
    services.room_tick(token=token)
    state = state_of(token)
    assert state.round_no == 2 and state.round.image_id == planned["image_public_id"]


def test_a_round_drawn_ahead_is_not_raced_once_its_consent_has_ended(pair, clock):
    a, b = pair
    dataset = race_dataset(plain=4, gold=0)
    token = matched_room(dataset, a, b)
    assert RaceRoom.objects.get(token=token).round_meta["next"]
    ended = timezone.now() - timedelta(minutes=1)
    Consent.objects.update(period_start=ended - timedelta(days=30), period_end=ended)
    for p in (a, b):
        services.room_connect(token=token, player_id=p.pk)
        services.room_message(token=token, player_id=p.pk, message=msg("ready"))
    assert state_of(token).phase == engine.LOBBY  # nothing left that may be raced
