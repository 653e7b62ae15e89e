from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.roles import Role
from annotate.models import Image
from tests.factories import ImageFactory, user_with_role

pytestmark = pytest.mark.django_db


def _url(image):
    return reverse("annotate:image-file", args=[image.public_id])


def test_player_gets_an_image_in_play(client, volunteer):
    image = ImageFactory()
    client.force_login(volunteer)

    response = client.get(_url(image))

    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert "private" in response["Cache-Control"]


def test_anonymous_is_sent_to_login(client):
    image = ImageFactory()

    response = client.get(_url(image))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize(
    "status", [Image.Status.QUARANTINED, Image.Status.RETIRED, Image.Status.UNUSABLE]
)
def test_player_cannot_see_images_out_of_play(client, volunteer, status):
    image = ImageFactory(status=status)
    client.force_login(volunteer)

    assert client.get(_url(image)).status_code == 404
    client.force_login(user_with_role(Role.CLINICIAN))
    assert client.get(_url(image)).status_code == 200


def test_withdrawn_images_are_served_to_nobody(client):
    image = ImageFactory(status=Image.Status.WITHDRAWN)
    client.force_login(user_with_role(Role.ADMIN))

    assert client.get(_url(image)).status_code == 404


def test_donor_sees_own_quarantined_image_but_not_others(client, donor_user):
    own = ImageFactory(status=Image.Status.QUARANTINED, consent__donor=donor_user.donor)
    other = ImageFactory(status=Image.Status.QUARANTINED)
    client.force_login(donor_user)

    assert client.get(_url(own)).status_code == 200
    assert client.get(_url(other)).status_code == 404


def test_dataset_pages_are_for_curators_and_researchers(client, volunteer, researcher):
    image = ImageFactory()
    client.force_login(volunteer)
    assert client.get(reverse("annotate:dataset-list")).status_code == 403

    client.force_login(researcher)
    listing = client.get(reverse("annotate:dataset-list"))
    detail = client.get(reverse("annotate:dataset-detail", args=[image.dataset.slug]))

    assert listing.status_code == 200
    assert image.dataset.name in listing.content.decode()
    assert str(image.public_id) in detail.content.decode()


def test_dataset_api_lists_classes_and_counts(api_client, researcher, volunteer):
    image = ImageFactory()
    api_client.force_authenticate(volunteer)
    assert api_client.get("/api/v1/datasets/").status_code == 403

    api_client.force_authenticate(researcher)
    body = api_client.get("/api/v1/datasets/").json()

    assert body[0]["slug"] == image.dataset.slug
    assert body[0]["n_images"] == 1
    assert [c["code"] for c in body[0]["classes"]] == ["a", "b"]


def test_researchers_see_settled_images_and_never_a_broken_thumbnail(client, researcher):
    retired = ImageFactory(status=Image.Status.RETIRED)
    held = ImageFactory(status=Image.Status.QUARANTINED, dataset=retired.dataset)
    client.force_login(researcher)

    assert client.get(_url(retired)).status_code == 200
    assert client.get(_url(held)).status_code == 404
    page = client.get(reverse("annotate:dataset-detail", args=[retired.dataset.slug]))
    html = page.content.decode()
    assert reverse("annotate:image-thumbnail", args=[retired.public_id]) in html
    assert reverse("annotate:image-thumbnail", args=[held.public_id]) not in html
    assert "Held for review" in html
