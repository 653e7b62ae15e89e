"""Decisions: gold → consensus → player skill, escalation and adjudication, unusable, contours."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from accounts.roles import Role
from annotate import consensus
from annotate.models import (
    Consensus,
    ConsensusRun,
    Dataset,
    GoldMask,
    Image,
    PlayerSkill,
    ReviewDecision,
    ReviewItem,
)
from annotate.review import review_decision_submit, review_item_claim, review_item_open
from consent.models import AuditEvent
from tessera.errors import ApplicationError, Conflict, NotPermitted
from tests.annotate.review_export_factories import (
    consented_image,
    contour,
    dataset_with_classes,
    label,
)
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def split():
    """12 images with truth alternating a/b that four reliable players label correctly, and one
    image ("disputed") on which they split 2/2."""
    dataset = dataset_with_classes("a", "b", retire_min_labels=99, max_labels=99)
    players = [user_with_role(Role.VOLUNTEER) for _ in range(4)]
    for n in range(12):
        image = consented_image(dataset)
        for player in players:
            label(player, image, "ab"[n % 2])
    disputed = consented_image(dataset)
    for player, code in zip(players, "aabb", strict=True):
        label(player, disputed, code)
    consensus.consensus_refit(dataset_id=dataset.pk)
    item = review_item_open(image=disputed, reason="uncertain", priority=0.5)
    return dataset, players, disputed, item


def _decide(user, item, action, **kwargs):
    review_item_claim(item_id=item.pk, user=user)
    return review_decision_submit(item_id=item.pk, user=user, action=action, **kwargs)


def test_decision_becomes_gold_clamps_consensus_and_rescales_skill(
    split, clinician, django_capture_on_commit_callbacks
):
    dataset, players, disputed, item = split
    before = {s.player_id: s for s in PlayerSkill.objects.filter(dataset=dataset)}
    runs = ConsensusRun.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        decision = _decide(clinician, item, "relabel", label="b", note="Clear melanoma pattern")

    disputed.refresh_from_db()
    item.refresh_from_db()
    assert disputed.gold_class.code == "b"
    assert (item.status, item.stage, item.assigned_to) == ("resolved", "first", None)
    assert item.outcome == {
        "action": "relabel",
        "label": "b",
        "decision_id": decision.pk,
        "stage": "first",
    }
    # The full refit queued on commit clamped the new gold...
    assert ConsensusRun.objects.count() == runs + 1
    assert ConsensusRun.objects.first().kind == "full"
    row = Consensus.objects.get(image=disputed)
    assert (row.label_class.code, row.confidence) == ("b", 1.0)
    # ...and rescored every player against it.
    after = {s.player_id: s for s in PlayerSkill.objects.filter(dataset=dataset)}
    assert [after[p.pk].n_gold for p in players] == [1, 1, 1, 1]
    assert [after[p.pk].n_gold_correct for p in players] == [0, 0, 1, 1]
    assert [before[p.pk].n_gold for p in players] == [0, 0, 0, 0]
    assert after[players[2].pk].accuracy > after[players[0].pk].accuracy
    actions = list(
        AuditEvent.objects.filter(
            target_type="annotate.reviewitem", target_id=str(item.pk)
        ).values_list("action", flat=True)
    )
    assert sorted(actions) == ["review.decision", "review.resolved"]
    assert AuditEvent.objects.get(action="review.decision").actor_id == clinician.pk


def test_confirm_makes_the_consensus_class_gold(split, clinician):
    dataset, players, disputed, item = split
    crowd = Consensus.objects.get(image=disputed).label_class

    _decide(clinician, item, "confirm")

    disputed.refresh_from_db()
    assert disputed.gold_class == crowd


def test_second_opinion_that_agrees_settles_the_item(split, clinician):
    dataset, players, disputed, item = split
    second = user_with_role(Role.CLINICIAN)

    _decide(clinician, item, "escalate", label="a", note="Not sure, second look please")
    item.refresh_from_db()
    assert (item.stage, item.status, item.assigned_to) == ("second", "open", None)
    disputed.refresh_from_db()
    assert disputed.gold_class is None
    with pytest.raises(NotPermitted):  # the first clinician cannot give the second opinion
        review_item_claim(item_id=item.pk, user=clinician)

    _decide(second, item, "relabel", label="a")

    item.refresh_from_db()
    disputed.refresh_from_db()
    assert (item.status, item.outcome["stage"], disputed.gold_class.code) == (
        "resolved",
        "second",
        "a",
    )


def test_disagreement_goes_to_an_adjudicator_who_decides(split, clinician):
    dataset, players, disputed, item = split
    second = user_with_role(Role.CLINICIAN)
    bystander = user_with_role(Role.CLINICIAN)
    admin = user_with_role(Role.ADMIN)

    _decide(clinician, item, "escalate", label="a")
    _decide(second, item, "relabel", label="b")

    item.refresh_from_db()
    assert (item.stage, item.status) == ("adjudication", "open")
    with pytest.raises(NotPermitted):
        review_item_claim(item_id=item.pk, user=bystander)
    with pytest.raises(ApplicationError):
        _decide(admin, item, "escalate")
    assert ReviewDecision.objects.filter(item=item).count() == 2

    _decide(admin, item, "relabel", label="b")

    item.refresh_from_db()
    disputed.refresh_from_db()
    assert (item.status, item.outcome["stage"], disputed.gold_class.code) == (
        "resolved",
        "adjudication",
        "b",
    )
    assert list(item.decisions.values_list("stage", "action")) == [
        ("first", "escalate"),
        ("second", "relabel"),
        ("adjudication", "relabel"),
    ]
    assert AuditEvent.objects.filter(action="review.escalated").count() == 2


def test_unusable_takes_the_image_out_and_resolves_its_other_items(
    split, clinician, django_capture_on_commit_callbacks
):
    dataset, players, disputed, item = split
    report = review_item_open(image=disputed, reason="reported", priority=0.25)

    with django_capture_on_commit_callbacks(execute=True):
        _decide(clinician, item, "unusable")

    disputed.refresh_from_db()
    report.refresh_from_db()
    assert disputed.status == Image.Status.UNUSABLE
    assert disputed.gold_class is None
    assert (report.status, report.outcome["resolved_with"]) == ("resolved", item.pk)
    assert ConsensusRun.objects.first().n_images == 12


def test_quarantined_image_released_back_into_play(clinician):
    dataset = dataset_with_classes("a", "b")
    image = consented_image(dataset, status=Image.Status.QUARANTINED)
    item = review_item_open(image=image, reason="quarantine", details={"flags": ["text"]})

    _decide(clinician, item, "release")

    image.refresh_from_db()
    assert image.status == Image.Status.ACTIVE


def test_edited_contour_becomes_the_gold_mask(clinician):
    from ml.raster import polygon_to_mask

    dataset = dataset_with_classes("lesion", task=Dataset.Task.SEGMENTATION)
    image = consented_image(dataset, width=8, height=8)
    for square in ([1, 1, 6, 6], [2, 2, 7, 7]):
        x0, y0, x1, y1 = square
        contour(user_with_role(Role.VOLUNTEER), image, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    consensus.consensus_mask_update(image_id=image.pk)
    item = review_item_open(image=image, reason="uncertain")
    points = [[1, 1], [7, 1], [7, 5], [1, 5]]

    with pytest.raises(ApplicationError):
        _decide(
            clinician,
            item,
            "contour",
            geometry={"type": "polygon", "points": [[0, 0], [9, 0], [9, 9]]},
        )
    decision = review_decision_submit(
        item_id=item.pk,
        user=clinician,
        action="contour",
        geometry={"type": "polygon", "points": points},
    )

    gold = GoldMask.objects.get(image=image)
    assert (gold.source, gold.decided_by_id) == ("clinician", clinician.pk)
    assert gold.polygons == [[[1.0, 1.0], [7.0, 1.0], [7.0, 5.0], [1.0, 5.0]]]
    assert decision.geometry["points"] == gold.polygons[0]
    stored = np.asarray(PILImage.open(gold.mask.open("rb"))) > 127
    assert (stored == polygon_to_mask(np.array(points), 8, 8)).all()


def test_deciding_needs_the_claim(split, clinician):
    dataset, players, disputed, item = split
    other = user_with_role(Role.CLINICIAN)
    review_item_claim(item_id=item.pk, user=other)

    with pytest.raises(Conflict):
        review_decision_submit(item_id=item.pk, user=clinician, action="relabel", label="b")

    disputed.refresh_from_db()
    assert disputed.gold_class is None
    assert not ReviewDecision.objects.exists()


@pytest.mark.parametrize("role", [Role.VOLUNTEER, Role.RESEARCHER])
def test_players_and_researchers_cannot_decide(split, role):
    dataset, players, disputed, item = split
    user = user_with_role(role)

    with pytest.raises(NotPermitted):
        review_decision_submit(item_id=item.pk, user=user, action="relabel", label="b")

    disputed.refresh_from_db()
    assert disputed.gold_class is None


def test_an_unknown_class_is_refused_and_nothing_changes(split, clinician):
    dataset, players, disputed, item = split

    with pytest.raises(ApplicationError):
        _decide(clinician, item, "relabel", label="zebra")

    item.refresh_from_db()
    assert item.status == ReviewItem.Status.OPEN
    assert not ReviewDecision.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="review.").exists()
