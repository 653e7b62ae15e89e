"""The next-images selector: consent, status, history, references and the gold mix."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone

from annotate.models import Annotation, Image
from annotate.selection import next_images_select
from consent.models import Consent
from games.models import GameSession, ServedImage
from tests.factories import ConsentFactory, DatasetFactory
from tests.games.factories import images_bulk

pytestmark = pytest.mark.django_db


def _select(player, dataset, count=50, rate=0.0, seed=0, exclude=()):
    return next_images_select(
        player_id=player.pk,
        dataset=dataset,
        count=count,
        gold_rate=rate,
        rng=np.random.default_rng(seed),
        exclude_image_ids=exclude,
    )


def _serve(player, dataset, picked):
    session = GameSession.objects.create(
        player=player, dataset=dataset, level_id=f"x{len(picked)}-{picked[0].image_id}", state={}
    )
    ServedImage.objects.bulk_create(
        [ServedImage(player=player, image_id=s.image_id, session=session) for s in picked]
    )


def test_never_the_same_image_twice_to_a_player(volunteer, clinician):
    dataset = DatasetFactory()
    images_bulk(dataset=dataset, consent=ConsentFactory(), n=30)

    seen = []
    for seed in range(3):
        picked = _select(volunteer, dataset, count=10, seed=seed)
        _serve(volunteer, dataset, picked)
        seen += [s.image_id for s in picked]

    assert len(seen) == 30
    assert len(set(seen)) == 30
    assert _select(volunteer, dataset) == []
    assert len(_select(clinician, dataset)) == 30  # another player still gets them


def test_images_the_player_labelled_elsewhere_are_not_served(volunteer):
    dataset = DatasetFactory()
    labelled, fresh = images_bulk(dataset=dataset, consent=ConsentFactory(), n=2)
    Annotation.objects.create(
        image=labelled,
        player=volunteer,
        label_class=dataset.classes.first(),
        source=Annotation.Source.REVIEW,
        idempotency_key="k",
    )

    assert [s.image_id for s in _select(volunteer, dataset)] == [fresh.pk]


def test_only_active_images_under_a_consent_that_permits_annotation(volunteer):
    dataset = DatasetFactory()
    now = timezone.now()
    ok = images_bulk(dataset=dataset, consent=ConsentFactory(), n=1)[0]
    ending = ConsentFactory(
        period_start=now - timezone.timedelta(days=1), period_end=now + timezone.timedelta(days=1)
    )
    ok_until_tomorrow = images_bulk(dataset=dataset, consent=ending, n=1)[0]
    images_bulk(
        dataset=dataset,
        consent=ConsentFactory(status=Consent.Status.WITHDRAWN, withdrawn_at=now),
        n=1,
    )
    images_bulk(dataset=dataset, consent=ConsentFactory(status=Consent.Status.EXPIRED), n=1)
    images_bulk(
        dataset=dataset,
        consent=ConsentFactory(decisions={"annotation": "deny", "research_export": "permit"}),
        n=1,
    )
    images_bulk(
        dataset=dataset, consent=ConsentFactory(decisions={"research_export": "permit"}), n=1
    )
    images_bulk(
        dataset=dataset,
        consent=ConsentFactory(
            period_start=now - timezone.timedelta(days=10),
            period_end=now - timezone.timedelta(days=1),
        ),
        n=1,
    )
    images_bulk(
        dataset=dataset, consent=ConsentFactory(period_start=now + timezone.timedelta(days=1)), n=1
    )
    for status in (Image.Status.WITHDRAWN, Image.Status.QUARANTINED, Image.Status.RETIRED):
        images_bulk(dataset=dataset, consent=ConsentFactory(), n=1, status=status)
    images_bulk(dataset=DatasetFactory(), consent=ConsentFactory(), n=1)  # another dataset

    assert sorted(s.image_id for s in _select(volunteer, dataset)) == sorted(
        [ok.pk, ok_until_tomorrow.pk]
    )


def test_gold_rate_zero_and_one_and_fill_when_a_kind_runs_out(volunteer):
    dataset = DatasetFactory()
    consent = ConsentFactory()
    gold_class = dataset.classes.first()
    gold = {i.pk for i in images_bulk(dataset=dataset, consent=consent, n=20, gold=gold_class)}
    plain = {i.pk for i in images_bulk(dataset=dataset, consent=consent, n=20)}

    none_gold = _select(volunteer, dataset, count=10, rate=0.0)
    all_gold = _select(volunteer, dataset, count=10, rate=1.0)
    filled = _select(volunteer, dataset, count=30, rate=1.0)

    assert {s.image_id for s in none_gold} <= plain
    assert {s.image_id for s in all_gold} <= gold
    assert all(s.gold_class_id == gold_class.pk for s in all_gold)
    assert len(filled) == 30  # 20 gold, then 10 non-gold to fill the board
    assert len({s.image_id for s in filled} & gold) == 20


def test_gold_share_follows_the_rate_over_many_draws(volunteer):
    dataset = DatasetFactory()
    consent = ConsentFactory()
    gold = {
        i.pk
        for i in images_bulk(dataset=dataset, consent=consent, n=60, gold=dataset.classes.first())
    }
    images_bulk(dataset=dataset, consent=consent, n=60)
    rng_for_counts = np.random.default_rng(7)
    expected = int(rng_for_counts.binomial(40, 0.25))

    picked = _select(volunteer, dataset, count=40, rate=0.25, seed=7)

    # The gold count is the binomial draw of the same generator: the rate is honoured exactly.
    assert len({s.image_id for s in picked} & gold) == expected
    assert len(picked) == 40


def test_excluded_reference_images_are_never_served(volunteer):
    dataset = DatasetFactory()
    ref, other = images_bulk(dataset=dataset, consent=ConsentFactory(), n=2, gold=None)

    assert [s.image_id for s in _select(volunteer, dataset, exclude=[ref.pk])] == [other.pk]


def test_random_order_differs_between_seeds(volunteer):
    dataset = DatasetFactory()
    images_bulk(dataset=dataset, consent=ConsentFactory(), n=40)

    first = [s.image_id for s in _select(volunteer, dataset, count=10, seed=1)]
    second = [s.image_id for s in _select(volunteer, dataset, count=10, seed=2)]
    again = [s.image_id for s in _select(volunteer, dataset, count=10, seed=1)]

    assert first == again
    assert first != second


def test_a_player_who_has_seen_nearly_everything_gets_exactly_the_rest(volunteer):
    """The walk reads windows that grow while most of what it reads is already seen."""
    dataset = DatasetFactory()
    images = images_bulk(dataset=dataset, consent=ConsentFactory(), n=300)
    seen, labelled, rest = images[:250], images[250:285], images[285:]
    session = GameSession.objects.create(player=volunteer, dataset=dataset, level_id="x", state={})
    ServedImage.objects.bulk_create(
        [ServedImage(player=volunteer, image=img, session=session) for img in seen]
    )
    Annotation.objects.bulk_create(
        [
            Annotation(
                image=img,
                player=volunteer,
                label_class=dataset.classes.first(),
                source=Annotation.Source.REVIEW,
                idempotency_key=f"r{img.pk}",
            )
            for img in labelled
        ]
    )

    for seed in range(5):
        picked = _select(volunteer, dataset, count=20, rate=0.0, seed=seed)
        assert sorted(s.image_id for s in picked) == sorted(img.pk for img in rest)


def test_a_selection_costs_the_same_few_queries_whatever_the_history(
    volunteer, django_assert_max_num_queries
):
    dataset = DatasetFactory()
    consent = ConsentFactory()
    images_bulk(dataset=dataset, consent=consent, n=200, gold=dataset.classes.first())
    images = images_bulk(dataset=dataset, consent=consent, n=200)
    session = GameSession.objects.create(player=volunteer, dataset=dataset, level_id="x", state={})
    ServedImage.objects.bulk_create(
        [ServedImage(player=volunteer, image=img, session=session) for img in images[:50]]
    )

    # A gold walk, the priority ranking, a plain walk: one query each when the first window
    # holds enough unseen images (a short dataset end may add a wrap-around query or two).
    with django_assert_max_num_queries(5):
        picked = _select(volunteer, dataset, count=20, rate=0.3, seed=3)

    assert len(picked) == 20
    assert not {s.image_id for s in picked} & {img.pk for img in images[:50]}
