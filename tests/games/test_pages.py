"""The game pages: levels with their locks, board, leaderboard and badges."""

from __future__ import annotations

import pytest

from games.models import PlayerDatasetStats, PlayerStats
from tests.games.factories import playable_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    return playable_dataset(classes=("normal", "pneumonia"), plain=10, modality="CR")


def test_levels_page_shows_the_tutorial_open_and_later_levels_locked(client, volunteer, dataset):
    client.force_login(volunteer)

    page = client.get(f"/play/{dataset.slug}/").content.decode()

    assert f'href="/play/{dataset.slug}/tutorial/"' in page
    assert f'href="/play/{dataset.slug}/level-1/"' not in page
    assert "Locked. Finish Tutorial." in page
    assert "Reference examples" in page


def test_completing_the_tutorial_opens_level_one(client, volunteer, dataset):
    PlayerDatasetStats.objects.create(
        player=volunteer, dataset=dataset, completed_levels=["tutorial"]
    )
    client.force_login(volunteer)

    page = client.get(f"/play/{dataset.slug}/").content.decode()

    assert f'href="/play/{dataset.slug}/level-1/"' in page
    assert f'href="/play/{dataset.slug}/level-2/"' not in page


def test_board_page_offers_window_presets_for_radiographs(client, volunteer, dataset):
    client.force_login(volunteer)

    board = client.get(f"/play/{dataset.slug}/tutorial/")
    locked = client.get(f"/play/{dataset.slug}/level-3/")

    assert board.status_code == 200
    assert b'data-preset="lung"' in board.content
    assert b"games/match3.js" in board.content
    assert locked.status_code == 403
    assert b"games/match3.js" not in locked.content


def test_leaderboard_and_badges_pages(client, volunteer):
    PlayerStats.objects.create(player=volunteer, league="silver", best_streak=12)
    client.force_login(volunteer)

    board = client.get("/play/leaderboard/?period=daily").content.decode()
    badges = client.get("/play/badges/").content.decode()

    assert "Silver league" in board
    assert 'aria-current="page" class="tab is-current">Daily' in board
    assert "On a roll" in badges and "Not earned yet" in badges


def test_pages_are_for_players_only(client, researcher, dataset):
    client.force_login(researcher)

    assert client.get(f"/play/{dataset.slug}/").status_code == 403
    assert client.get("/play/leaderboard/").status_code == 403
