"""Who sees what: volunteers see no donors, consents, uploads or originals; donors only their
own; coordinators what they recorded or uploaded; admins everything."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.roles import Role
from consent.models import Consent, IntakeBatch, IntakeItem
from consent.services import donor_create
from tests.factories import ConsentFactory, ImageFactory, user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(donor_consent, donor_user, dataset):
    batch = IntakeBatch.objects.create(
        donor=donor_consent.donor, consent=donor_consent, dataset=dataset, uploaded_by=donor_user
    )
    image = ImageFactory(consent=donor_consent, dataset=dataset, status="quarantined")
    IntakeItem.objects.create(
        batch=batch, name="scan.dcm", status="quarantined", image=image, sha256="ab" * 32
    )
    return batch


def _pages(consent, batch):
    item = batch.items.get()
    return [
        reverse("consent:overview"),
        reverse("consent:my-images"),
        reverse("consent:upload"),
        reverse("consent:withdraw", args=[consent.pk]),
        reverse("consent:batch", args=[batch.public_id]),
        reverse("consent:review-list"),
        reverse("consent:review-item", args=[item.public_id]),
        reverse("consent:paper", args=[consent.form_id]),
        reverse("consent:sign", args=[consent.form_id]),
    ]


def _apis(consent, batch):
    item = batch.items.get()
    return [
        "/api/v1/consent/forms/",
        "/api/v1/consent/consents/",
        "/api/v1/consent/my-images/",
        f"/api/v1/intake/batches/{batch.public_id}/",
        "/api/v1/intake/review/",
        f"/api/v1/intake/review/{item.public_id}/",
    ]


@pytest.mark.parametrize("role", [Role.VOLUNTEER, Role.CLINICIAN, Role.RESEARCHER])
def test_players_and_researchers_see_no_donor_data(client, api_client, role, donor_consent, batch):
    user = user_with_role(role)
    client.force_login(user)
    api_client.force_authenticate(user)

    pages = {url: client.get(url).status_code for url in _pages(donor_consent, batch)}
    apis = {url: api_client.get(url).status_code for url in _apis(donor_consent, batch)}
    withdraw = client.post(reverse("consent:withdraw", args=[donor_consent.pk]))
    api_withdraw = api_client.post(f"/api/v1/consent/consents/{donor_consent.pk}/withdraw/")

    assert set(pages.values()) <= {403, 404}, pages
    assert set(apis.values()) <= {403, 405}, apis
    assert (withdraw.status_code, api_withdraw.status_code) == (404, 403)
    assert Consent.objects.get(pk=donor_consent.pk).status == "active"


def test_anonymous_is_sent_to_log_in_and_the_api_answers_401(
    client, api_client, donor_consent, batch
):
    public = reverse("consent:withdraw-with-code")
    pages = [u for u in _pages(donor_consent, batch)]

    assert {client.get(u).status_code for u in pages} == {302}
    assert client.get(public).status_code == 200
    assert {api_client.get(u).status_code for u in _apis(donor_consent, batch)} == {401}


def test_volunteer_cannot_see_quarantined_pixels_or_any_original(client, volunteer, batch):
    image = batch.items.get().image
    client.force_login(volunteer)

    assert client.get(reverse("annotate:image-file", args=[image.public_id])).status_code == 404
    assert (
        client.get(reverse("annotate:image-thumbnail", args=[image.public_id])).status_code == 404
    )


def test_a_donor_sees_only_their_own(client, api_client, donor_consent, batch):
    other_user = user_with_role(Role.DONOR)
    other = donor_create(user_id=other_user.pk)
    own = ConsentFactory(donor=other)
    client.force_login(other_user)
    api_client.force_authenticate(other_user)

    consents = api_client.get("/api/v1/consent/consents/").json()
    images = api_client.get("/api/v1/consent/my-images/").json()
    progress = api_client.get(f"/api/v1/intake/batches/{batch.public_id}/")
    overview = client.get(reverse("consent:overview")).content.decode()

    assert [c["id"] for c in consents] == [own.pk]
    assert images == []
    assert progress.status_code == 403
    assert donor_consent.donor.pseudonym not in overview
    assert client.get(reverse("consent:batch", args=[batch.public_id])).status_code == 404
    assert client.get(reverse("consent:review-list")).status_code == 403


def test_coordinator_sees_what_they_recorded_and_uploaded(
    client, api_client, coordinator, donor_consent, batch, dataset
):
    recorded = ConsentFactory(method=Consent.Method.PAPER, recorded_by_id=coordinator.pk)
    mine = IntakeBatch.objects.create(
        donor=recorded.donor, consent=recorded, dataset=dataset, uploaded_by=coordinator
    )
    api_client.force_authenticate(coordinator)

    consents = api_client.get("/api/v1/consent/consents/").json()

    assert [c["id"] for c in consents] == [recorded.pk]
    assert api_client.get(f"/api/v1/intake/batches/{mine.public_id}/").status_code == 200
    assert api_client.get(f"/api/v1/intake/batches/{batch.public_id}/").status_code == 403
    # The review queue is the site's, without donor identity.
    queue = api_client.get("/api/v1/intake/review/").json()
    assert [q["id"] for q in queue] == [str(batch.items.get().public_id)]
    assert "donor" not in queue[0] and "name" not in queue[0]
    assert api_client.get("/api/v1/consent/my-images/").status_code == 403


def test_admin_sees_everything(api_client, admin_user, donor_consent, batch):
    paper = ConsentFactory(method=Consent.Method.PAPER)
    api_client.force_authenticate(admin_user)

    ids = {c["id"] for c in api_client.get("/api/v1/consent/consents/").json()}

    assert ids == {donor_consent.pk, paper.pk}
    assert api_client.get(f"/api/v1/intake/batches/{batch.public_id}/").status_code == 200


def test_donor_image_page_shows_status_label_count_and_export_state(
    client, donor_user, donor_consent, volunteer
):
    from annotate.models import Annotation

    image = ImageFactory(consent=donor_consent)
    for n, counted in enumerate([True, True, False]):
        Annotation.objects.create(
            image=image,
            player=volunteer,
            label_class=image.dataset.classes.first(),
            source="match3",
            idempotency_key=f"k{n}",
            is_counted=counted,
        )
    client.force_login(donor_user)

    page = client.get(reverse("consent:my-images")).content.decode()

    assert reverse("annotate:image-thumbnail", args=[image.public_id]) in page
    assert "labelled 2 times · not exported" in page
    assert "In play" in page
