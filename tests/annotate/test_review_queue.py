"""The review queue: priority order, filters, and claims that two clinicians never share."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.roles import Role
from annotate.models import ReviewItem
from annotate.review import (
    review_item_claim,
    review_item_claim_next,
    review_item_release,
    review_item_report,
)
from annotate.review.selectors import review_queue
from annotate.review.services import _take
from tessera.errors import Conflict, NotPermitted
from tests.annotate.review_export_factories import consented_image, dataset_with_classes
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def items():
    """One item per reason on dataset "one", and a second uncertain one on dataset "two"."""
    one = dataset_with_classes("a", "b", slug="one")
    two = dataset_with_classes("a", "b", slug="two")
    made = {
        "uncertain-low": ReviewItem.objects.create(
            image=consented_image(one), reason="uncertain", priority=0.1
        ),
        "uncertain-high": ReviewItem.objects.create(
            image=consented_image(two), reason="uncertain", priority=0.45
        ),
        "disagreement": ReviewItem.objects.create(
            image=consented_image(one), reason="disagreement", priority=0.2
        ),
        "reported": ReviewItem.objects.create(
            image=consented_image(one), reason="reported", priority=0.25
        ),
        "quarantine": ReviewItem.objects.create(
            image=consented_image(one, status="quarantined"), reason="quarantine", priority=0.0
        ),
        "escalated": ReviewItem.objects.create(
            image=consented_image(one), reason="uncertain", priority=0.0, stage="second"
        ),
    }
    ReviewItem.objects.create(
        image=consented_image(one),
        reason="uncertain",
        priority=0.9,
        status="resolved",
        resolved_at=timezone.now(),
    )
    return made


def _names(items, queryset):
    by_pk = {item.pk: name for name, item in items.items()}
    return [by_pk[i.pk] for i in queryset]


def test_queue_order_stage_then_reason_then_priority(items, clinician):
    assert _names(items, review_queue(user=clinician)) == [
        "escalated",
        "quarantine",
        "reported",
        "disagreement",
        "uncertain-high",
        "uncertain-low",
    ]


def test_queue_filters_by_dataset_and_reason(items, clinician):
    assert _names(items, review_queue(user=clinician, dataset_slug="two")) == ["uncertain-high"]
    assert _names(items, review_queue(user=clinician, reason="uncertain")) == [
        "escalated",
        "uncertain-high",
        "uncertain-low",
    ]


def test_adjudication_items_reach_only_adjudicators(items, clinician):
    item = items["uncertain-low"]
    item.stage = "adjudication"
    item.save(update_fields=["stage"])
    designated = user_with_role(Role.CLINICIAN)
    designated.user_permissions.add(Permission.objects.get(codename="adjudicate_reviews"))
    admin = user_with_role(Role.ADMIN)

    assert item not in review_queue(user=clinician)
    assert item in review_queue(user=designated)
    assert item in review_queue(user=admin)


@pytest.mark.parametrize("role", [Role.VOLUNTEER, Role.RESEARCHER, Role.DONOR])
def test_only_clinicians_and_admins_have_a_queue(items, role):
    with pytest.raises(NotPermitted):
        review_queue(user=user_with_role(role))


def test_two_clinicians_never_get_the_same_item(items, clinician):
    other = user_with_role(Role.CLINICIAN)

    first = review_item_claim_next(user=clinician)
    second = review_item_claim_next(user=other)

    assert first.pk == items["escalated"].pk
    assert second.pk == items["quarantine"].pk
    # Asking again returns the item each already holds.
    assert review_item_claim_next(user=clinician).pk == first.pk
    with pytest.raises(Conflict):
        review_item_claim(item_id=first.pk, user=other)
    assert ReviewItem.objects.get(pk=first.pk).assigned_to == clinician


def test_the_claim_is_a_compare_and_set(items, clinician):
    # Both clinicians picked the same candidate before either wrote: only one update wins.
    other = user_with_role(Role.CLINICIAN)
    item = items["reported"]
    now = timezone.now()

    results = [
        _take(item_id=item.pk, user=clinician, now=now),
        _take(item_id=item.pk, user=other, now=now),
    ]

    assert results == [True, False]
    assert ReviewItem.objects.get(pk=item.pk).assigned_to == clinician


def test_every_clinician_gets_a_distinct_item_until_the_queue_is_empty(items):
    clinicians = [user_with_role(Role.CLINICIAN) for _ in range(7)]

    got = [review_item_claim_next(user=c) for c in clinicians]

    held = [g.pk for g in got if g is not None]
    assert len(held) == len(set(held)) == 6
    assert got[-1] is None


def test_an_expired_claim_can_be_taken_over(items, clinician):
    other = user_with_role(Role.CLINICIAN)
    item = review_item_claim(item_id=items["reported"].pk, user=clinician)
    ReviewItem.objects.filter(pk=item.pk).update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )

    taken = review_item_claim(item_id=item.pk, user=other)

    assert taken.assigned_to == other
    assert taken.claim_expires_at > timezone.now()


def test_claiming_another_item_releases_the_first(items, clinician):
    review_item_claim(item_id=items["reported"].pk, user=clinician)

    review_item_claim(item_id=items["disagreement"].pk, user=clinician)

    assert ReviewItem.objects.get(pk=items["reported"].pk).assigned_to is None
    review_item_release(item_id=items["disagreement"].pk, user=clinician)
    assert not ReviewItem.objects.filter(assigned_to=clinician).exists()


def test_player_reports_open_one_item_and_raise_its_priority(volunteer):
    dataset = dataset_with_classes("a", "b")
    image = consented_image(dataset)
    others = [user_with_role(Role.VOLUNTEER) for _ in range(2)]

    review_item_report(image=image, player=volunteer, reason_text="  Upside   down ")
    review_item_report(image=image, player=volunteer, reason_text="again")
    item = review_item_report(image=image, player=others[0], reason_text="Not skin")

    assert ReviewItem.objects.filter(image=image).count() == 1
    assert item.reason == "reported"
    assert [r["text"] for r in item.details["reports"]] == ["Upside down", "Not skin"]
    assert item.priority == 0.5
