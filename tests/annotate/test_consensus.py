"""Consensus in the platform: Dawid–Skene over a dataset's labels, skills, retirement, STAPLE."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from django.core.cache import cache
from PIL import Image as PILImage

from accounts.roles import Role
from annotate import consensus
from annotate.models import (
    Annotation,
    Consensus,
    ConsensusMask,
    ConsensusRun,
    Image,
    PlayerSkill,
    ReviewItem,
)
from tests.factories import DatasetFactory, ImageFactory, user_with_role

pytestmark = pytest.mark.django_db


def _label(player, image, code, response_ms=2000):
    return Annotation.objects.create(
        image=image,
        player=player,
        label_class=image.dataset.classes.get(code=code),
        source=Annotation.Source.MATCH_THREE,
        idempotency_key=uuid.uuid4().hex,
        response_ms=response_ms,
    )


@pytest.fixture
def crowd():
    """30 images (truth alternating a/b), 6 reliable players, one who always answers "a",
    one who always answers the wrong class; images 0 and 1 are gold."""
    dataset = DatasetFactory(retire_min_labels=99, max_labels=99)
    consent = ImageFactory(dataset=dataset).consent
    Image.objects.filter(dataset=dataset).delete()
    truth = ["a" if i % 2 == 0 else "b" for i in range(30)]
    images = [ImageFactory(dataset=dataset, consent=consent) for _ in truth]
    for image, code in zip(images[:2], truth[:2], strict=True):
        image.gold_class = dataset.classes.get(code=code)
        image.save(update_fields=["gold_class"])
    rng = np.random.default_rng(7)
    good = [user_with_role(Role.VOLUNTEER) for _ in range(6)]
    spammer, adversary = user_with_role(Role.VOLUNTEER), user_with_role(Role.VOLUNTEER)
    for image, code in zip(images, truth, strict=True):
        for player in good:
            other = "b" if code == "a" else "a"
            _label(player, image, code if rng.random() < 0.85 else other)
        _label(spammer, image, "a", response_ms=150)
        _label(adversary, image, "b" if code == "a" else "a")
    return dataset, images, truth, good, spammer, adversary


def test_full_refit_recovers_the_truth_and_the_players(crowd):
    dataset, images, truth, good, spammer, adversary = crowd

    run = consensus.consensus_refit(dataset_id=dataset.pk)

    got = {c.image_id: c.label_class.code for c in Consensus.objects.select_related("label_class")}
    assert [got[i.pk] for i in images] == truth
    assert (run.kind, run.n_answers, run.n_images, run.n_players) == ("full", 240, 30, 8)
    skills = {s.player_id: s for s in PlayerSkill.objects.filter(dataset=dataset)}
    assert all(skills[p.pk].accuracy > 0.7 for p in good)
    assert skills[adversary.pk].is_flagged
    assert "answers systematically wrong (adversarial)" in skills[adversary.pk].flag_reasons
    assert skills[spammer.pk].is_flagged
    assert "answers faster than a human can judge" in skills[spammer.pk].flag_reasons
    assert not any(skills[p.pk].is_flagged for p in good)
    # Confusion rows are probabilities in class order; gold counts come from the gold images.
    assert np.allclose(np.array(skills[good[0].pk].confusion).sum(axis=1), 1.0)
    assert skills[good[0].pk].n_gold == 2


def test_consensus_rows_carry_posterior_and_counts(crowd):
    dataset, images, *_ = crowd

    consensus.consensus_refit(dataset_id=dataset.pk)

    row = Consensus.objects.get(image=images[5])
    assert set(row.posterior) == {"a", "b"}
    assert sum(row.posterior.values()) == pytest.approx(1.0, abs=1e-5)
    assert row.confidence == pytest.approx(max(row.posterior.values()), abs=1e-5)
    assert (row.n_labels, row.n_players) == (8, 8)


def test_gold_is_clamped(crowd):
    dataset, images, truth, good, *_ = crowd
    # Everybody says the gold image 0 (truth "a") is "b": the gold still wins.
    Annotation.objects.filter(image=images[0]).delete()
    for player in good:
        _label(player, images[0], "b")

    consensus.consensus_refit(dataset_id=dataset.pk)

    row = Consensus.objects.get(image=images[0])
    assert row.label_class.code == "a"
    assert row.confidence == 1.0


def test_incremental_update_matches_a_full_refit(crowd):
    dataset, images, truth, good, *_ = crowd
    consensus.consensus_refit(dataset_id=dataset.pk)
    newcomer = user_with_role(Role.VOLUNTEER)
    for image, code in zip(images[10:16], truth[10:16], strict=True):
        _label(newcomer, image, code)

    run = consensus.consensus_update(dataset_id=dataset.pk)
    incremental = {c.image_id: (c.label_class_id, c.confidence) for c in Consensus.objects.all()}
    consensus.consensus_refit(dataset_id=dataset.pk)
    full = {c.image_id: (c.label_class_id, c.confidence) for c in Consensus.objects.all()}

    assert run.kind == "incremental"
    assert run.n_answers == 246
    assert {k: v[0] for k, v in incremental.items()} == {k: v[0] for k, v in full.items()}
    assert max(abs(incremental[k][1] - full[k][1]) for k in full) < 0.05
    assert PlayerSkill.objects.get(player=newcomer, dataset=dataset).n_labels == 6


def test_labels_added_queue_an_update_when_due(crowd, django_capture_on_commit_callbacks):
    dataset, images, truth, good, *_ = crowd
    dataset.consensus_every = 5
    dataset.save(update_fields=["consensus_every"])

    with django_capture_on_commit_callbacks(execute=True):
        first = consensus.consensus_labels_added(dataset_id=dataset.pk, n=4)
    assert first is False
    assert not ConsensusRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        second = consensus.consensus_labels_added(dataset_id=dataset.pk, n=1)

    assert second is True
    assert ConsensusRun.objects.count() == 1
    assert Consensus.objects.count() == 30
    # The run started the count again: 4 more labels are not yet due.
    with django_capture_on_commit_callbacks(execute=True):
        assert consensus.consensus_labels_added(dataset_id=dataset.pk, n=4) is False
    assert ConsensusRun.objects.count() == 1


def test_labels_added_while_an_update_waits_queue_no_second_one(
    crowd, django_capture_on_commit_callbacks
):
    """One queued update per dataset at a time, however many labels come while it waits for a
    worker; once it runs, labels count towards the next one."""
    dataset, *_ = crowd
    dataset.consensus_every = 5
    dataset.save(update_fields=["consensus_every"])

    with django_capture_on_commit_callbacks(execute=False) as queued:
        due = [
            consensus.consensus_labels_added(dataset_id=dataset.pk, n=n) for n in (3, 3, 1, 2, 6)
        ]

    # 3, 6 (due), then 7, 9, 15 while that one waits: one update queued, the worker never ran.
    assert due == [False, True, False, False, False]
    assert len(queued) == 1
    assert not ConsensusRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        queued[0]()  # the worker takes it: the run starts the count again
    assert ConsensusRun.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=False) as queued_after:
        after = [consensus.consensus_labels_added(dataset_id=dataset.pk, n=n) for n in (4, 1)]
    assert after == [False, True]
    assert len(queued_after) == 1


def test_a_lost_update_task_holds_the_next_one_back_only_for_a_while(
    crowd, django_capture_on_commit_callbacks, monkeypatch
):
    dataset, *_ = crowd
    dataset.consensus_every = 5
    dataset.save(update_fields=["consensus_every"])
    marks = []

    class Spy:
        """The cache, noting the lifetime of every mark added."""

        def __getattr__(self, name):
            return getattr(cache, name)

        def add(self, key, value, timeout):
            marks.append((key, timeout))
            return cache.add(key, value, timeout)

    monkeypatch.setattr(consensus, "cache", Spy())
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert consensus.consensus_labels_added(dataset_id=dataset.pk, n=5) is True
    assert len(queued) == 1  # ... and never run: the broker lost it

    key = f"consensus:update-queued:{dataset.pk}"
    assert (key, consensus.UPDATE_QUEUED_TTL) in marks  # the mark of a queued update expires
    assert 0 < consensus.UPDATE_QUEUED_TTL <= 3600
    with django_capture_on_commit_callbacks(execute=False) as meanwhile:
        assert consensus.consensus_labels_added(dataset_id=dataset.pk, n=1) is False
    assert meanwhile == []
    cache.delete(key)  # as it does once UPDATE_QUEUED_TTL has passed

    with django_capture_on_commit_callbacks(execute=True):
        assert consensus.consensus_labels_added(dataset_id=dataset.pk, n=1) is True
    assert ConsensusRun.objects.count() == 1


def test_confident_images_retire_and_uncertain_ones_at_the_limit_go_to_review(crowd):
    dataset, images, truth, good, spammer, adversary = crowd
    dataset.retire_min_labels, dataset.retire_confidence, dataset.max_labels = 3, 0.99, 2
    dataset.save()
    # Image 3: two players with identical records disagree on it: uncertain at the label limit.
    Annotation.objects.filter(image=images[3]).delete()
    twins = [user_with_role(Role.VOLUNTEER), user_with_role(Role.VOLUNTEER)]
    for twin, answer in zip(twins, ["a", "b"], strict=True):
        for image, code in zip(images[10:20], truth[10:20], strict=True):
            _label(twin, image, code)
        _label(twin, images[3], answer)

    run = consensus.consensus_refit(dataset_id=dataset.pk)

    statuses = dict(Image.objects.filter(dataset=dataset).values_list("id", "status"))
    assert statuses[images[0].pk] == Image.Status.ACTIVE  # gold stays in play
    assert statuses[images[3].pk] == Image.Status.RETIRED
    item = ReviewItem.objects.get(image=images[3])
    assert item.reason == ReviewItem.Reason.UNCERTAIN
    assert item.details["n_labels"] == 2
    assert item.details["confidence"] < 0.9
    assert run.n_review_opened == ReviewItem.objects.count()
    assert run.n_retired == Image.objects.filter(dataset=dataset, status="retired").count() == 28


def test_withdrawn_images_and_uncounted_labels_do_not_count(crowd):
    dataset, images, truth, good, *_ = crowd
    Image.objects.filter(pk=images[4].pk).update(status=Image.Status.WITHDRAWN)
    Annotation.objects.filter(player=good[0]).update(is_counted=False)

    run = consensus.consensus_refit(dataset_id=dataset.pk)

    assert run.n_images == 29
    assert run.n_answers == 29 * 7
    assert not Consensus.objects.filter(image=images[4]).exists()
    assert not PlayerSkill.objects.filter(player=good[0]).exists()


def test_invalidate_forces_a_full_refit(crowd, django_capture_on_commit_callbacks):
    dataset, *_ = crowd
    consensus.consensus_refit(dataset_id=dataset.pk)

    with django_capture_on_commit_callbacks(execute=True):
        consensus.consensus_invalidate(dataset_id=dataset.pk)

    assert list(ConsensusRun.objects.values_list("kind", flat=True)) == ["full", "full"]


def _square(x0, y0, x1, y1):
    return {"type": "polygon", "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}


def test_staple_mask_from_contours_retires_when_raters_agree():
    dataset = DatasetFactory(task="segmentation", retire_min_labels=3, retire_mask_agreement=0.8)
    image = ImageFactory(dataset=dataset, width=40, height=30)
    players = [user_with_role(Role.VOLUNTEER) for _ in range(3)]
    for player, shift in zip(players, [0, 1, -1], strict=True):
        Annotation.objects.create(
            image=image,
            player=player,
            geometry=_square(10 + shift, 8, 30 + shift, 22),
            source=Annotation.Source.CONTOUR_RACE,
            idempotency_key=uuid.uuid4().hex,
        )

    record = consensus.consensus_mask_update(image_id=image.pk)

    assert isinstance(record, ConsensusMask)
    assert (record.n_contours, record.n_players) == (3, 3)
    assert record.mean_agreement > 0.9
    with record.mask.open("rb") as f:
        mask = np.array(PILImage.open(io.BytesIO(f.read())))
    assert mask.shape == (30, 40)
    assert mask[15, 20] == 255 and mask[2, 2] == 0
    with record.probability.open("rb") as f:
        probability = np.array(PILImage.open(io.BytesIO(f.read())))
    assert probability.max() > 60000
    image.refresh_from_db()
    assert image.status == Image.Status.RETIRED


def test_one_contour_is_not_a_consensus():
    image = ImageFactory(width=20, height=20)
    Annotation.objects.create(
        image=image,
        player=user_with_role(Role.VOLUNTEER),
        geometry=_square(2, 2, 10, 10),
        source=Annotation.Source.CONTOUR_RACE,
        idempotency_key="k",
    )

    assert consensus.consensus_mask_update(image_id=image.pk) is None
    assert not ConsensusMask.objects.exists()


def test_dataset_page_shows_the_consensus_state(crowd, client):
    dataset, *_ = crowd
    consensus.consensus_refit(dataset_id=dataset.pk)
    client.force_login(user_with_role(Role.RESEARCHER))

    page = client.get(f"/datasets/{dataset.slug}/").content.decode()

    assert "Full refit" in page
    assert "240 labels from 8 players" in page
    assert "(2 flagged as spammer, adversarial or bot)" in page
