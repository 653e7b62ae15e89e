"""Review pages and API: access, what the page shows (never player names), decisions over HTTP."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.roles import Role
from annotate import consensus
from annotate.models import Dataset, Image, PlayerSkill, ReviewItem
from annotate.review import review_item_claim, review_item_open
from tests.annotate.review_export_factories import (
    consented_image,
    contour,
    dataset_with_classes,
    label,
)
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def disputed():
    dataset = dataset_with_classes(
        "nevus", "melanoma", name="Skin", retire_min_labels=99, max_labels=99
    )
    players = [user_with_role(Role.VOLUNTEER, display_name=f"Secret Name {n}") for n in range(3)]
    image = consented_image(dataset)
    for player, code in zip(players, ["nevus", "melanoma", "melanoma"], strict=True):
        label(player, image, code)
    consensus.consensus_refit(dataset_id=dataset.pk)
    item = review_item_open(
        image=image,
        reason="disagreement",
        priority=0.6,
        details={"model": {"label": "nevus", "confidence": 0.81, "version": "resnet-3"}},
    )
    return item, players


@pytest.mark.parametrize("role", [Role.VOLUNTEER, Role.RESEARCHER, Role.DONOR])
def test_only_clinicians_reach_the_review_pages(client, disputed, role):
    item, _ = disputed
    client.force_login(user_with_role(role))

    assert client.get(reverse("annotate:review-queue")).status_code == 403
    assert client.get(reverse("annotate:review-item", args=[item.pk])).status_code == 403
    response = client.post(
        reverse("annotate:review-decide", args=[item.pk]), {"action": "relabel", "label": "nevus"}
    )
    assert response.status_code == 403
    item.refresh_from_db()
    assert item.status == "open"


def test_review_page_shows_votes_reliability_and_model_but_no_names(client, clinician, disputed):
    item, players = disputed
    client.force_login(clinician)
    review_item_claim(item_id=item.pk, user=clinician)

    response = client.get(reverse("annotate:review-item", args=[item.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="votes"' in html
    assert "Player 1" in html and "Player 3" in html
    assert "Secret Name" not in html
    assert all(p.username not in html for p in players)
    accuracy = PlayerSkill.objects.get(player=players[0]).accuracy
    assert f"Player 1 {accuracy:.2f}" in html
    assert 'data-testid="model-opinion"' in html and "resnet-3" in html
    assert 'data-testid="decision-form"' in html


def test_the_model_panel_is_absent_without_an_opinion(client, clinician):
    image = consented_image(dataset_with_classes("a", "b"))
    item = review_item_open(image=image, reason="reported")
    client.force_login(clinician)

    html = client.get(reverse("annotate:review-item", args=[item.pk])).content.decode()

    assert 'data-testid="model-opinion"' not in html
    assert 'data-testid="decision-form"' not in html  # not claimed yet
    assert "Review this item" in html


def test_queue_page_start_claims_the_top_item_and_the_form_decides(client, clinician, disputed):
    item, _ = disputed
    client.force_login(clinician)

    assert (
        item.get_reason_display() in client.get(reverse("annotate:review-queue")).content.decode()
    )
    start = client.post(reverse("annotate:review-next"))
    assert start["Location"] == reverse("annotate:review-item", args=[item.pk])
    decided = client.post(
        reverse("annotate:review-decide", args=[item.pk]),
        {"action": "relabel", "label": "melanoma"},
    )

    assert decided.status_code == 302
    assert decided["Location"] == reverse("annotate:review-queue")
    item.refresh_from_db()
    assert item.status == "resolved"
    assert Image.objects.get(pk=item.image_id).gold_class.code == "melanoma"


def test_api_queue_claim_and_decision(api_client, clinician, disputed):
    item, _ = disputed
    api_client.force_authenticate(clinician)

    listed = api_client.get("/api/v1/review/items/", {"reason": "disagreement"})
    claimed = api_client.post("/api/v1/review/items/claim-next/", {}, format="json")
    other = user_with_role(Role.CLINICIAN)
    api_client.force_authenticate(other)
    refused = api_client.post(f"/api/v1/review/items/{item.pk}/claim/")
    api_client.force_authenticate(clinician)
    decided = api_client.post(
        f"/api/v1/review/items/{item.pk}/decisions/",
        {"action": "escalate", "label": "nevus", "note": "borderline"},
        format="json",
    )

    assert [row["id"] for row in listed.json()] == [item.pk]
    assert listed.json()[0]["details"]["model"]["label"] == "nevus"
    assert claimed.json()["id"] == item.pk
    assert refused.status_code == 409
    assert decided.status_code == 201
    assert decided.json() == {
        "id": decided.json()["id"],
        "stage": "first",
        "action": "escalate",
        "item_status": "open",
        "item_stage": "second",
    }


def test_api_rejects_volunteers(api_client, volunteer, disputed):
    item, _ = disputed
    api_client.force_authenticate(volunteer)

    assert api_client.get("/api/v1/review/items/").status_code == 403
    assert api_client.post("/api/v1/review/items/claim-next/").status_code == 403
    assert ReviewItem.objects.get(pk=item.pk).assigned_to is None


def test_players_report_an_image_through_the_api(api_client, volunteer):
    image = consented_image(dataset_with_classes("a", "b"))
    api_client.force_authenticate(volunteer)

    response = api_client.post(
        f"/api/v1/images/{image.public_id}/report/", {"reason": "This is a photo of a cat"}
    )
    hidden = consented_image(image.dataset, status=Image.Status.QUARANTINED)
    refused = api_client.post(f"/api/v1/images/{hidden.public_id}/report/", {"reason": "x"})

    assert response.status_code == 201
    item = ReviewItem.objects.get(image=image)
    assert (item.reason, item.details["reports"][0]["text"]) == (
        "reported",
        "This is a photo of a cat",
    )
    assert refused.status_code == 403
    assert not ReviewItem.objects.filter(image=hidden).exists()


def test_contour_item_shows_each_outline_and_the_probability_map(client, clinician):
    dataset = dataset_with_classes("lesion", task=Dataset.Task.SEGMENTATION)
    image = consented_image(dataset, width=8, height=8)
    for x in (1, 2):
        contour(user_with_role(Role.VOLUNTEER), image, [[x, x], [6, x], [6, 6], [x, 6]])
    consensus.consensus_mask_update(image_id=image.pk)
    item = review_item_open(image=image, reason="uncertain")
    client.force_login(clinician)

    html = client.get(reverse("annotate:review-item", args=[item.pk])).content.decode()
    png = client.get(reverse("annotate:review-probability", args=[item.pk]))

    assert html.count('class="outline outline-') == 2
    assert 'points="1,1 6,1 6,6 1,6"' in html
    assert 'class="consensus"' in html
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_outline_dataset_page_reports_staple_consensus_and_gold_masks(client, researcher):
    from django.core.files.base import ContentFile

    from annotate import consensus
    from annotate.models import GoldMask, Image
    from tests.annotate.review_export_factories import consented_image, outlined_image

    image = outlined_image("seg-page")
    dataset = image.dataset
    consensus.consensus_mask_update(image_id=image.pk)
    gold = consented_image(dataset, width=8, height=8, status=Image.Status.ACTIVE)
    mask = GoldMask(image=gold, source=GoldMask.Source.DATASET, polygons=[])
    mask.mask.save("gold.png", ContentFile(b"png"), save=True)
    client.force_login(researcher)

    html = client.get(reverse("annotate:dataset-detail", args=[dataset.slug])).content.decode()

    assert "STAPLE" in html and "Dawid" not in html
    assert "Images with a consensus outline</dt><dd>1, mean agreement" in html
    assert "3 who outlined" in html
    assert "1 gold)" in html
