"""Delayed points when consensus settles, badges, leagues and the leaderboard."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotate.models import Annotation
from games import scoring
from games.engine.match3 import Match3State
from games.models import DelayedAward, GameSession, PlayerStats, ScoreDay, ServedImage
from games.scoring import delayed_points_award
from games.selectors import leaderboard
from tessera.errors import ApplicationError
from tests.factories import ConsentFactory, DatasetFactory, user_with_role
from tests.games.factories import images_bulk

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(scoring, "broadcast_on_commit", lambda *args: calls.append(args))
    return calls


def _label(player, image, cls, key, counted=True):
    return Annotation.objects.create(
        image=image,
        player=player,
        label_class=cls,
        source="match3",
        idempotency_key=key,
        is_counted=counted,
    )


def _session(player, dataset):
    from games.engine.match3 import LevelConfig, new_game

    state, _ = new_game(LevelConfig("tutorial", ("A", "B", "C")), (), seed=1)
    return GameSession.objects.create(
        player=player, dataset=dataset, level_id="tutorial", state=state.to_dict(), status="won"
    )


def test_players_are_paid_the_consensus_probability_of_their_answer(sent):
    dataset = DatasetFactory(classes=["a", "b", "c"])
    a, b, c = dataset.classes.all()
    image = images_bulk(dataset=dataset, consent=ConsentFactory(), n=1)[0]
    alice, bob, carol = (user_with_role("volunteer") for _ in range(3))
    session = _session(alice, dataset)
    ServedImage.objects.create(player=alice, image=image, session=session)
    _label(alice, image, b, "1")
    _label(bob, image, a, "2")
    _label(carol, image, c, "3", counted=False)  # too fast: never paid

    paid = delayed_points_award(image_id=image.pk, posterior=[0.1, 0.85, 0.05], consensus_label="B")
    again = delayed_points_award(image_id=image.pk, posterior=[0.1, 0.85, 0.05])

    assert paid == {alice.pk: 34, bob.pk: 4}  # round(40 * 0.85), round(40 * 0.1)
    assert again == {}
    assert DelayedAward.objects.count() == 2
    assert PlayerStats.objects.get(player=alice).delayed_points == 34
    today = timezone.now().date()
    assert ScoreDay.objects.get(player=alice, day=today).points == 34
    session.refresh_from_db()
    assert session.delayed_score == 34
    assert Match3State.from_dict(session.state).delayed_score == 34
    assert [(group, kind, payload["points"]) for group, kind, payload in sent] == [
        (f"user.{alice.pk}", "notify", 34),
        (f"user.{bob.pk}", "notify", 4),
    ]
    assert sent[0][2]["text"] == "+34 points: the crowd agreed on an image you labelled (B)."


def test_gold_images_pay_nothing_later(sent, volunteer):
    dataset = DatasetFactory()
    gold = dataset.classes.first()
    image = images_bulk(dataset=dataset, consent=ConsentFactory(), n=1, gold=gold)[0]
    _label(volunteer, image, gold, "g")

    assert delayed_points_award(image_id=image.pk, posterior=[1.0, 0.0]) == {}
    assert sent == []
    assert DelayedAward.objects.count() == 0


@pytest.mark.parametrize(
    ("posterior", "message"),
    [([0.5, 0.3, 0.2], "needs 2 probabilities"), ([0.5, 0.4], "must sum to 1")],
)
def test_a_malformed_posterior_is_refused(posterior, message, volunteer):
    dataset = DatasetFactory()
    image = images_bulk(dataset=dataset, consent=ConsentFactory(), n=1)[0]
    _label(volunteer, image, dataset.classes.first(), "k")

    with pytest.raises(ApplicationError, match=message):
        delayed_points_award(image_id=image.pk, posterior=posterior)

    assert DelayedAward.objects.count() == 0


def test_enough_delayed_points_earn_the_consensus_builder_badge(sent, volunteer):
    PlayerStats.objects.create(player=volunteer, delayed_points=980)
    dataset = DatasetFactory()
    image = images_bulk(dataset=dataset, consent=ConsentFactory(), n=1)[0]
    _label(volunteer, image, dataset.classes.first(), "k")

    delayed_points_award(image_id=image.pk, posterior=[1.0, 0.0])

    assert list(volunteer.badges.values_list("badge_id", flat=True)) == ["consensus_builder"]


def test_leaderboards_rank_within_a_league_by_period(volunteer):
    today = timezone.now().date()
    rival = user_with_role("volunteer", display_name="Rival")
    expert = user_with_role("volunteer", display_name="Expert")
    for user, league in ((volunteer, "newcomer"), (rival, "newcomer"), (expert, "diamond")):
        PlayerStats.objects.create(player=user, league=league)
    ScoreDay.objects.create(player=volunteer, day=today, points=100)
    ScoreDay.objects.create(player=rival, day=today - timezone.timedelta(days=30), points=500)
    ScoreDay.objects.create(player=rival, day=today, points=50)
    ScoreDay.objects.create(player=expert, day=today, points=9000)

    league, daily = leaderboard(player_id=volunteer.pk, period="daily")
    _, all_time = leaderboard(player_id=volunteer.pk, period="all-time")

    assert league == "newcomer"
    assert [(r.rank, r.name, r.points, r.is_me) for r in daily] == [
        (1, volunteer.public_name(), 100, True),
        (2, "Rival", 50, False),
    ]
    assert [(r.name, r.points) for r in all_time] == [
        ("Rival", 550),
        (volunteer.public_name(), 100),
    ]


def test_recording_moves_costs_four_queries_once_the_rows_exist(
    django_assert_num_queries, volunteer
):
    from games.models import PlayerDatasetStats, PlayerStats, ScoreDay
    from games.scoring import MoveTally, stats_record_moves
    from tests.factories import DatasetFactory

    dataset = DatasetFactory()
    tally = MoveTally(labels=3, gold_answers=1, gold_correct=1, points=30, level_id="level-1")
    stats_record_moves(player_id=volunteer.pk, dataset_id=dataset.pk, tally=tally)  # creates rows

    # Lock lifetime stats, one UPDATE of the per-dataset increments, update lifetime stats, one
    # update of today's points.
    with django_assert_num_queries(4):
        stats_record_moves(player_id=volunteer.pk, dataset_id=dataset.pk, tally=tally)

    assert PlayerDatasetStats.objects.get(player=volunteer, dataset=dataset).labels == 6
    assert PlayerStats.objects.get(player=volunteer).gold_correct == 2
    assert ScoreDay.objects.get(player=volunteer).points == 60

    won = MoveTally(labels=2, points=10, level_won=True, level_id="level-1")
    stats_record_moves(player_id=volunteer.pk, dataset_id=dataset.pk, tally=won)
    stats_record_moves(player_id=volunteer.pk, dataset_id=dataset.pk, tally=won)

    row = PlayerDatasetStats.objects.get(player=volunteer, dataset=dataset)
    assert (row.labels, row.completed_levels) == (10, ["level-1"])
    assert PlayerStats.objects.get(player=volunteer).levels_completed == 2
