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


@pytest.mark.django_db
def test_a_deleted_sessions_ledger_rows_go_with_it(volunteer):
    """ServedImage and SessionMove have no foreign-key constraints in the database; the ORM's
    cascade still removes them with their session, and only theirs."""
    from games.models import SessionMove
    from tessera import db

    dataset = DatasetFactory(classes=["a", "b"])
    images = images_bulk(dataset=dataset, consent=ConsentFactory(), n=3)
    session, other = (
        GameSession.objects.create(player=volunteer, dataset=dataset, level_id=level, state={})
        for level in ("tutorial", "level-1")
    )
    assert _serve(session, [i.pk for i in images[:2]]) == {images[0].pk, images[1].pk}
    assert _serve(other, [images[2].pk]) == {images[2].pk}
    db.insert_rows(
        SessionMove,
        ("session_id", "key", "seq", "outcome"),
        [(session.pk, "k", 0, "applied"), (other.pk, "k", 0, "applied")],
    )

    session.delete()

    assert list(ServedImage.objects.values_list("session_id", flat=True)) == [other.pk]
    assert list(SessionMove.objects.values_list("session_id", flat=True)) == [other.pk]
