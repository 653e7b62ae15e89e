"""The whole loop: labels → consensus (after commit) → retirement → players' delayed points, and
a clinician's decision → gold → points for the players it settles."""

from __future__ import annotations

import uuid

import pytest

from accounts.roles import Role
from annotate.labelling import LabelInput, labels_submit
from annotate.models import Annotation, ConsensusRun, Image, ReviewItem
from annotate.review.services import review_decision_submit, review_item_claim
from games.models import DelayedAward
from tests.factories import DatasetFactory, ImageFactory, user_with_role

pytestmark = pytest.mark.django_db(transaction=True)


def _submit(player, image, code):
    cls = image.dataset.classes.get(code=code)
    return labels_submit(
        player_id=player.pk,
        labels=[LabelInput(uuid.uuid4().hex, image.pk, cls.pk, 2500)],
        source=Annotation.Source.MATCH_THREE,
        allowed_image_ids=frozenset({image.pk}),
    )


def test_agreeing_labels_settle_the_image_and_pay_its_players():
    dataset = DatasetFactory(consensus_every=15, retire_min_labels=3, retire_confidence=0.9)
    gold = [ImageFactory(dataset=dataset) for _ in range(4)]
    for image, code in zip(gold, "abab", strict=True):
        Image.objects.filter(pk=image.pk).update(gold_class=dataset.classes.get(code=code))
    image = ImageFactory(dataset=dataset)
    players = [user_with_role(Role.VOLUNTEER) for _ in range(3)]

    for player in players:
        for g, code in zip(gold, "abab", strict=True):
            _submit(player, g, code)
        _submit(player, image, "a")

    run = ConsensusRun.objects.get(dataset=dataset)
    image.refresh_from_db()
    assert (run.kind, run.n_answers) == ("full", 15)  # the first update of a dataset is a full fit
    assert run.settled_image_ids == [image.pk]
    assert image.status == Image.Status.RETIRED
    awards = DelayedAward.objects.filter(image=image)
    assert sorted(awards.values_list("player_id", flat=True)) == sorted(p.pk for p in players)
    assert all(a.points > 0 for a in awards)
    assert not DelayedAward.objects.filter(image__in=gold).exists()  # gold scored at once


def test_no_update_before_enough_labels():
    dataset = DatasetFactory(consensus_every=3)
    image = ImageFactory(dataset=dataset)

    for player in [user_with_role(Role.VOLUNTEER) for _ in range(2)]:
        _submit(player, image, "a")

    assert not ConsensusRun.objects.exists()


def test_a_clinician_decision_pays_the_players_it_proves_right():
    dataset = DatasetFactory(consensus_every=100)
    image = ImageFactory(dataset=dataset, status=Image.Status.RETIRED)
    right, wrong = user_with_role(Role.VOLUNTEER), user_with_role(Role.VOLUNTEER)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.ACTIVE)
    _submit(right, image, "b")
    _submit(wrong, image, "a")
    item = ReviewItem.objects.create(image=image, reason=ReviewItem.Reason.UNCERTAIN)
    clinician = user_with_role(Role.CLINICIAN)
    review_item_claim(item_id=item.pk, user=clinician)

    review_decision_submit(item_id=item.pk, user=clinician, action="relabel", label="b")

    image.refresh_from_db()
    assert image.gold_class.code == "b"
    paid = dict(DelayedAward.objects.filter(image=image).values_list("player_id", "points"))
    assert paid.get(right.pk, 0) > paid.get(wrong.pk, 0)
