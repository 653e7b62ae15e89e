"""games.services._serve: an image goes to one session of a player, even when two race for it."""

from __future__ import annotations

import pytest

from games.models import GameSession, ServedImage
from games.services import _serve
from tests.factories import ConsentFactory, DatasetFactory
from tests.games.factories import images_bulk

pytestmark = pytest.mark.django_db


def test_images_another_session_of_the_player_took_are_not_served_twice(volunteer):
    dataset = DatasetFactory()
    a, b, c = images_bulk(dataset=dataset, consent=ConsentFactory(), n=3)
    first, second = (
        GameSession.objects.create(player=volunteer, dataset=dataset, level_id=level, state={})
        for level in ("l1", "l2")
    )

    got_first = _serve(first, [a.pk, b.pk])
    got_second = _serve(second, [b.pk, c.pk])  # b was taken by the first session meanwhile

    assert got_first == {a.pk, b.pk}
    assert got_second == {c.pk}
    assert sorted(ServedImage.objects.values_list("session__level_id", "image_id")) == sorted(
        [("l1", a.pk), ("l1", b.pk), ("l2", c.pk)]
    )
