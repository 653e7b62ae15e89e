"""tessera.db: SQL written once per model for hot paths, read and written as the ORM would."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from annotate.models import LabelClass
from annotate.services import dataset_ensure
from tessera import db
from tessera.db import insert_unless_taken

pytestmark = pytest.mark.django_db


def test_a_new_row_is_stored_with_its_defaults_and_gets_its_key():
    user = User(username="ana", email="ana@example.org")
    assert insert_unless_taken(user) is True
    stored = User.objects.get(username="ana")
    assert user.pk == stored.pk and not user._state.adding
    assert stored.email == "ana@example.org" and stored.date_joined is not None


def test_a_taken_row_is_skipped_and_the_transaction_goes_on():
    User.objects.create(username="ben", email="first@example.org")
    with transaction.atomic():
        assert insert_unless_taken(User(username="ben", email="second@example.org")) is False
        # No IntegrityError, no savepoint needed: the transaction is still usable.
        User.objects.create(username="cai")
    assert User.objects.get(username="ben").email == "first@example.org"
    assert User.objects.filter(username="cai").exists()


def test_instances_are_read_with_the_orms_conversions_in_the_asked_order():
    dataset = dataset_ensure(
        slug="cxr", name="CXR", classes=[("n", "Normal"), ("p", "Pneumonia")], modality="CR"
    )
    rows = db.instances(LabelClass, "dataset_id = %s", [dataset.pk], order_by='"order" DESC')
    expected = list(LabelClass.objects.filter(dataset=dataset).order_by("-order"))
    assert rows == expected
    assert [(r.code, r.name, r.dataset_id) for r in rows] == [
        (e.code, e.name, e.dataset_id) for e in expected
    ]
    assert db.instance(LabelClass, "code = %s AND dataset_id = %s", ["x", dataset.pk]) is None


def test_a_locked_read_returns_the_row_inside_a_transaction():
    user = User.objects.create(username="dee", email="dee@example.org")
    with transaction.atomic():
        locked = db.instance(User, "id = %s", [user.pk], lock=True)
    assert locked == user and locked.date_joined == user.date_joined


def test_a_related_set_given_as_prefetched_is_served_without_a_query(
    django_assert_num_queries,
):
    dataset = dataset_ensure(slug="d", name="D", classes=[("a", "A"), ("b", "B")], modality="CR")
    classes = db.instances(LabelClass, "dataset_id = %s", [dataset.pk], order_by='"order"')
    db.prefetched(dataset, "classes", classes)
    with django_assert_num_queries(0):
        assert list(dataset.classes.all()) == classes


def test_many_rows_are_inserted_at_once_and_taken_ones_are_skipped():
    User.objects.create(username="eve", email="first@example.org")
    rows = [(name, f"{name}@example.org", "!") for name in ("fay", "eve", "gus")]
    with transaction.atomic():
        got = db.insert_rows(
            User,
            ("username", "email", "password"),
            rows,
            unless_taken=True,
            returning=("id", "username"),
        )
        assert sorted(name for _, name in got) == ["fay", "gus"]  # the taken one skipped
        User.objects.create(username="hal")  # the transaction is still usable
    stored = {u.username: u.pk for u in User.objects.all()}
    assert {name: pk for pk, name in got} == {"fay": stored["fay"], "gus": stored["gus"]}
    assert User.objects.get(username="eve").email == "first@example.org"
    assert User.objects.get(username="gus").date_joined is not None


def test_written_fields_change_only_that_row():
    a = User.objects.create(username="ida", email="a@example.org")
    b = User.objects.create(username="jon", email="b@example.org")
    a.email, a.first_name = "new@example.org", "Ida"
    db.update_fields(a, ("email",))
    assert User.objects.get(pk=a.pk).email == "new@example.org"
    assert User.objects.get(pk=a.pk).first_name == ""  # not among the fields written
    assert User.objects.get(pk=b.pk).email == "b@example.org"


def test_written_fields_with_auto_now_get_the_current_time():
    from games.models import PlayerStats

    user = User.objects.create(username="kim")
    stats = PlayerStats.objects.create(player=user)
    before = stats.updated_at
    stats.labels = 3
    db.update_fields(stats, ("labels", "updated_at"))
    stored = PlayerStats.objects.get(pk=stats.pk)
    assert stored.labels == 3 and stored.updated_at > before
    assert stats.updated_at == stored.updated_at


def _session():
    from games.models import GameSession
    from tests.games.factories import playable_dataset

    dataset = playable_dataset(plain=2)
    player = User.objects.create(username="kim")
    return GameSession.objects.create(player=player, dataset=dataset, level_id="l", state={})


def test_rows_are_inserted_without_instances_with_defaults_and_prepared_values():
    from games.models import SessionMove

    session = _session()
    before = timezone.now()
    got = db.insert_rows(
        SessionMove,
        ("session_id", "key", "seq", "outcome", "result"),
        [
            (session.pk, "k1", 0, "applied", {"events": [{"kind": "label", "ids": (1, 2)}]}),
            (session.pk, "k2", 1, "rejected", {"message": "no"}),
        ],
        returning=("key",),
    )

    assert sorted(got) == [("k1",), ("k2",)]
    moves = {m.key: m for m in SessionMove.objects.filter(session=session)}
    assert moves["k1"].result == {"events": [{"kind": "label", "ids": [1, 2]}]}  # JSON stored
    assert moves["k2"].outcome == "rejected" and moves["k2"].seq == 1
    assert moves["k1"].created_at == moves["k2"].created_at >= before  # auto_now_add, one time


def test_inserted_rows_that_are_taken_are_skipped_and_a_missing_column_is_refused():
    from games.models import SessionMove

    session = _session()
    columns = ("session_id", "key", "seq", "outcome")
    db.insert_rows(SessionMove, columns, [(session.pk, "k1", 0, "applied")])
    with transaction.atomic():
        got = db.insert_rows(
            SessionMove,
            columns,
            [(session.pk, "k1", 5, "rejected"), (session.pk, "k2", 1, "applied")],
            unless_taken=True,
            returning=("key", "seq"),
        )
    assert got == [("k2", 1)]
    assert SessionMove.objects.get(session=session, key="k1").seq == 0  # the first one kept
    assert SessionMove.objects.get(session=session, key="k2").result == {}  # the default

    with pytest.raises(ValueError, match="needs a value for SessionMove.seq"):
        db.insert_rows(SessionMove, ("session_id", "key", "outcome"), [(session.pk, "k3", "x")])
    assert db.insert_rows(SessionMove, columns, []) == []
