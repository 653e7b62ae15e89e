"""Coordinator review of quarantined intake: release, black out and release, or reject."""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image as PILImage

from annotate.models import Image
from consent.models import AuditEvent, IntakeItem
from consent.services.intake import intake_batch_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_ocr")]


@pytest.fixture
def quarantined(django_capture_on_commit_callbacks, donor_user, donor_consent, dataset, mr_files):
    ds = pydicom.dcmread(mr_files[20])
    ds.BurnedInAnnotation = "YES"
    out = io.BytesIO()
    ds.save_as(out)
    with django_capture_on_commit_callbacks(execute=True):
        batch = intake_batch_create(
            uploaded_by=donor_user,
            consent=donor_consent,
            dataset=dataset,
            files=[SimpleUploadedFile("burned.dcm", out.getvalue())],
        )
    item = batch.items.get()
    assert item.status == "quarantined"
    return item


def test_review_page_shows_the_image_and_boxes(client, coordinator, quarantined):
    client.force_login(coordinator)

    listing = client.get(reverse("consent:review-list")).content.decode()
    page = client.get(reverse("consent:review-item", args=[quarantined.public_id]))

    assert reverse("consent:review-item", args=[quarantined.public_id]) in listing
    assert page.status_code == 200
    html = page.content.decode()
    assert reverse("annotate:image-file", args=[quarantined.image.public_id]) in html
    assert 'id="detected-boxes"' in html
    assert (
        client.get(reverse("annotate:image-file", args=[quarantined.image.public_id])).status_code
        == 200
    )


def test_black_out_and_release_rewrites_the_stored_pixels(
    client, django_capture_on_commit_callbacks, coordinator, quarantined
):
    image = quarantined.image
    old_files = [image.file.name, image.thumbnail.name, quarantined.cleaned_file.name]
    old_sha = image.sha256
    client.force_login(coordinator)
    boxes = [{"left": 0, "top": 0, "width": 20, "height": 10}]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("consent:review-item", args=[quarantined.public_id]),
            {"action": "redact", "boxes": json.dumps(boxes)},
        )

    assert response.status_code == 302
    quarantined.refresh_from_db()
    image.refresh_from_db()
    assert (quarantined.status, image.status) == ("accepted", Image.Status.ACTIVE)
    assert quarantined.reviewed_by_id == coordinator.pk
    assert image.sha256 != old_sha and image.sha256 == quarantined.sha256
    cleaned = pydicom.dcmread(quarantined.cleaned_file.open("rb"))
    pixels = cleaned.pixel_array
    assert int(pixels[:10, :20].max()) == int(pixels.min())
    assert cleaned.BurnedInAnnotation == "NO"
    with image.file.open("rb") as handle:
        shown = np.asarray(PILImage.open(handle).convert("L"))
    assert int(shown[:10, :20].max()) == 0
    assert [default_storage.exists(name) for name in old_files] == [False, False, False]
    assert AuditEvent.objects.filter(action="intake.redacted_and_released").count() == 1


def test_release_as_is_and_reject(client, coordinator, quarantined, api_client):
    api_client.force_authenticate(coordinator)
    released = api_client.post(
        f"/api/v1/intake/review/{quarantined.public_id}/", {"action": "release"}, format="json"
    )
    assert released.json()["status"] == "accepted"
    again = api_client.post(
        f"/api/v1/intake/review/{quarantined.public_id}/", {"action": "reject"}, format="json"
    )
    assert again.status_code == 403  # no longer in the queue
    quarantined.image.refresh_from_db()
    assert quarantined.image.status == Image.Status.ACTIVE


def test_reject_deletes_the_pixels(
    client, django_capture_on_commit_callbacks, coordinator, quarantined
):
    files = [quarantined.image.file.name, quarantined.cleaned_file.name]
    client.force_login(coordinator)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("consent:review-item", args=[quarantined.public_id]),
            {"action": "reject", "reason": "name in the corner"},
        )

    item = IntakeItem.objects.get(pk=quarantined.pk)
    assert (item.status, item.reason) == ("rejected", "Rejected at review: name in the corner")
    assert (item.image.status, item.image.file.name) == (Image.Status.UNUSABLE, "")
    assert [default_storage.exists(n) for n in files] == [False, False]


def test_redact_without_boxes_changes_nothing(client, coordinator, quarantined):
    client.force_login(coordinator)

    response = client.post(
        reverse("consent:review-item", args=[quarantined.public_id]),
        {"action": "redact", "boxes": "[]"},
    )

    assert response.status_code == 400
    assert IntakeItem.objects.get(pk=quarantined.pk).status == "quarantined"


def test_donor_cannot_review_their_own_quarantine(client, donor_user, quarantined):
    client.force_login(donor_user)

    response = client.post(
        reverse("consent:review-item", args=[quarantined.public_id]), {"action": "release"}
    )

    assert response.status_code == 404
    assert IntakeItem.objects.get(pk=quarantined.pk).status == "quarantined"
