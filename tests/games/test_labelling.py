"""annotate.labelling: a batch is stored once per key, checked for access and for withdrawal."""

from __future__ import annotations

import pytest

from annotate.labelling import LabelInput, labels_submit
from annotate.models import Annotation, Image
from tessera.errors import ApplicationError, Conflict, NotPermitted
from tests.factories import ConsentFactory, DatasetFactory
from tests.games.factories import images_bulk

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    dataset = DatasetFactory()
    images = images_bulk(dataset=dataset, consent=ConsentFactory(), n=3)
    return dataset.classes.all()[0], images


def _submit(player, labels, allowed):
    return labels_submit(
        player_id=player.pk, labels=labels, source="match3", allowed_image_ids=frozenset(allowed)
    )


def test_a_retried_batch_returns_the_stored_labels_without_duplicates(volunteer, setup):
    cls, images = setup
    batch = [LabelInput(f"k{i}", img.pk, cls.pk, 900) for i, img in enumerate(images)]
    allowed = [img.pk for img in images]

    first = _submit(volunteer, batch, allowed)
    partial_retry = _submit(volunteer, batch[1:], allowed)

    assert [s.created for s in first] == [True, True, True]
    assert [s.created for s in partial_retry] == [False, False]
    assert [s.annotation_id for s in partial_retry] == [s.annotation_id for s in first[1:]]
    assert Annotation.objects.count() == 3


def test_images_not_served_to_the_player_are_refused_and_nothing_is_stored(volunteer, setup):
    cls, images = setup
    batch = [LabelInput("a", images[0].pk, cls.pk, 900), LabelInput("b", images[1].pk, cls.pk, 900)]

    with pytest.raises(NotPermitted, match="only label images you were given"):
        _submit(volunteer, batch, [images[0].pk])

    assert Annotation.objects.count() == 0


def test_a_withdrawn_images_label_is_refused_and_nothing_of_the_batch_is_stored(volunteer, setup):
    cls, images = setup
    Image.objects.filter(pk=images[1].pk).update(status=Image.Status.WITHDRAWN)
    batch = [LabelInput("a", images[0].pk, cls.pk, 900), LabelInput("b", images[1].pk, cls.pk, 900)]

    with pytest.raises(Conflict, match="withdrawn by its donor") as error:
        _submit(volunteer, batch, [images[0].pk, images[1].pk])

    assert error.value.extra == {"image": str(images[1].public_id), "status": "withdrawn"}
    assert Annotation.objects.count() == 0


def test_a_key_reused_for_another_label_is_a_conflict(volunteer, setup):
    cls, images = setup
    allowed = [img.pk for img in images]
    _submit(volunteer, [LabelInput("same", images[0].pk, cls.pk, 900)], allowed)

    with pytest.raises(Conflict, match="already used for another label"):
        _submit(volunteer, [LabelInput("same", images[1].pk, cls.pk, 900)], allowed)

    assert list(Annotation.objects.values_list("image_id", flat=True)) == [images[0].pk]


def test_keys_belong_to_their_player(volunteer, clinician, setup):
    cls, images = setup
    allowed = [images[0].pk]

    _submit(volunteer, [LabelInput("k", images[0].pk, cls.pk, 900)], allowed)
    _submit(clinician, [LabelInput("k", images[0].pk, cls.pk, 900)], allowed)

    assert Annotation.objects.count() == 2


def test_flagged_labels_are_stored_uncounted(volunteer, setup):
    cls, images = setup

    stored = _submit(
        volunteer, [LabelInput("f", images[0].pk, cls.pk, 90, counted=False)], [images[0].pk]
    )

    assert stored[0].is_counted is False
    assert Annotation.objects.get().is_counted is False


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([LabelInput("x", 1, 1, 900), LabelInput("x", 2, 1, 900)], "its own idempotency key"),
        ([LabelInput("", 1, 1, 900)], "1 to 64 characters"),
        ([LabelInput("y", 1, 1, -5)], "never negative"),
    ],
)
def test_malformed_batches_are_refused(volunteer, labels, message):
    with pytest.raises(ApplicationError, match=message):
        _submit(volunteer, labels, [1, 2])


def test_a_batch_partly_stored_before_stores_only_the_rest(volunteer, setup, monkeypatch):
    """The insert skips the key ``k0`` stored before; only that label is read back."""
    from annotate import labelling

    cls, images = setup
    batch = [LabelInput(f"k{i}", img.pk, cls.pk, 900) for i, img in enumerate(images)]
    allowed = [img.pk for img in images]
    (other,) = _submit(volunteer, batch[:1], allowed)
    real = labelling._stored_by_key
    reads = []

    def counted_read(player_id, keys):
        reads.append(list(keys))
        return real(player_id, keys)

    monkeypatch.setattr(labelling, "_stored_by_key", counted_read)

    stored = _submit(volunteer, batch, allowed)

    assert reads == [["k0"]]
    assert [s.created for s in stored] == [False, True, True]
    assert stored[0].annotation_id == other.annotation_id
    assert sorted(Annotation.objects.values_list("idempotency_key", flat=True)) == [
        "k0",
        "k1",
        "k2",
    ]


def test_a_retry_that_commits_just_before_the_insert_is_not_duplicated(
    volunteer, setup, monkeypatch
):
    """Two retries racing: the other one stores ``k1`` after this one checked the images."""
    from annotate import labelling

    cls, images = setup
    batch = [LabelInput(f"k{i}", img.pk, cls.pk, 900) for i, img in enumerate(images)]
    allowed = [img.pk for img in images]
    _submit(volunteer, batch[:1], allowed)
    real = labelling._check_access
    checks = []

    def racing_check(labels, allowed_ids):
        checks.append(len(labels))
        found = real(labels, allowed_ids)
        if len(checks) == 1:  # the other retry commits k1 right after this check
            _submit(volunteer, batch[1:2], allowed)
        return found

    monkeypatch.setattr(labelling, "_check_access", racing_check)

    stored = _submit(volunteer, batch, allowed)

    assert [s.created for s in stored] == [False, False, True]
    assert len({s.annotation_id for s in stored}) == 3
    assert Annotation.objects.count() == 3
    assert sorted(Annotation.objects.values_list("idempotency_key", flat=True)) == [
        "k0",
        "k1",
        "k2",
    ]


def test_a_batch_costs_two_queries(volunteer, setup, django_assert_num_queries):
    cls, images = setup
    batch = [LabelInput(f"q{i}", img.pk, cls.pk, 900) for i, img in enumerate(images)]

    # Status and dataset of the images, one INSERT ... RETURNING (plus the savepoint pair
    # around it); no read of stored keys while every key is new.
    with django_assert_num_queries(4):
        stored = _submit(volunteer, batch, [img.pk for img in images])

    assert [s.created for s in stored] == [True, True, True]
    assert len({s.annotation_id for s in stored}) == 3
