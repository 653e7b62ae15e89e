"""Who may export and download, the API round trip, and what a later withdrawal does."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from django.urls import reverse

from accounts.roles import Role
from annotate.export import exports_mark_withdrawn
from annotate.models import Export
from consent.models import AuditEvent
from tests.annotate.review_export_factories import (
    consensus_set,
    consented_image,
    dataset_with_classes,
)
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    dataset = dataset_with_classes("a", "b", slug="chest", name="Chest")
    for n in range(3):
        consensus_set(consented_image(dataset), {"a": 0.8 - 0.1 * n, "b": 0.2 + 0.1 * n}, 4, 4)
    return dataset


def _request(api_client, user, **payload):
    api_client.force_authenticate(user)
    return api_client.post(
        "/api/v1/exports/create/", {"dataset": "chest", **payload}, format="json"
    )


def _download(client, export):
    response = client.get(reverse("api-export-download", args=[export.pk]))
    return response, b"".join(response.streaming_content) if response.status_code == 200 else b""


def test_researcher_requests_polls_and_downloads(
    api_client, client, researcher, dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = _request(api_client, researcher, min_confidence=0.65, format="csv")

    assert created.status_code == 202
    assert (created.json()["version"], created.json()["status"]) == (1, "pending")
    detail = api_client.get(f"/api/v1/exports/{created.json()['id']}/").json()
    assert (detail["status"], detail["progress"], detail["counts"]["images"]) == ("ready", 1.0, 2)
    export = Export.objects.get()
    client.force_login(researcher)
    response, data = _download(client, export)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="chest-v1.zip"'
    assert hashlib.sha256(data).hexdigest() == export.sha256 == detail["sha256"]
    assert "labels.csv" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert (
        AuditEvent.objects.filter(action="export.downloaded", actor_id=researcher.pk).count() == 1
    )


@pytest.mark.parametrize("role", [Role.VOLUNTEER, Role.CLINICIAN, Role.DONOR])
def test_only_researchers_and_admins_export(api_client, client, dataset, role):
    user = user_with_role(role)

    assert _request(api_client, user).status_code == 403
    client.force_login(user)
    assert client.get(reverse("annotate:export-list")).status_code == 403
    assert client.post(reverse("annotate:export-list"), {"dataset": "chest"}).status_code == 403
    assert not Export.objects.exists()


def test_a_researcher_cannot_see_or_download_another_researchers_export(
    api_client, client, researcher, dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _request(api_client, researcher)
    export = Export.objects.get()
    rival = user_with_role(Role.RESEARCHER)
    admin = user_with_role(Role.ADMIN)

    client.force_login(rival)
    response, data = _download(client, export)
    page = client.get(reverse("annotate:export-list")).content.decode()
    api_client.force_authenticate(rival)

    assert response.status_code == 403 and data == b""
    assert api_client.get(f"/api/v1/exports/{export.pk}/").status_code == 403
    assert api_client.get("/api/v1/exports/").json() == []
    assert f'data-export="{export.pk}"' not in page
    client.force_login(admin)
    assert _download(client, export)[0].status_code == 200
    assert not AuditEvent.objects.filter(action="export.downloaded", actor_id=rival.pk).exists()


def test_the_page_requests_an_export_and_lists_it(
    client, researcher, dataset, django_capture_on_commit_callbacks
):
    client.force_login(researcher)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("annotate:export-list"),
            {"dataset": "chest", "classes": ["a"], "min_labels": "4", "format": "coco"},
        )

    export = Export.objects.get()
    assert response.status_code == 302
    assert (export.status, export.format, export.filters["classes"]) == ("ready", "coco", ["a"])
    html = client.get(reverse("annotate:export-list")).content.decode()
    assert f'data-export="{export.pk}"' in html
    assert reverse("api-export-download", args=[export.pk]) in html


def test_withdrawal_marks_the_export_and_a_new_snapshot_leaves_the_image_out(
    api_client, client, researcher, dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _request(api_client, researcher)
    first = Export.objects.get()
    sha = first.sha256
    gone = first.items.first().image

    with django_capture_on_commit_callbacks(execute=True):
        affected = exports_mark_withdrawn(image_ids=[gone.pk])
    with django_capture_on_commit_callbacks(execute=True):
        _request(api_client, researcher)

    first.refresh_from_db()
    second = Export.objects.get(version=2)
    assert affected == [first.pk]
    assert (first.n_withdrawn, first.sha256) == (1, sha)
    assert first.withdrawn_at is not None
    detail = api_client.get(f"/api/v1/exports/{first.pk}/").json()
    assert detail["withdrawn_items"] == [str(gone.public_id)]
    assert second.counts["images"] == 2
    assert gone.public_id not in set(second.items.values_list("public_id", flat=True))
    client.force_login(researcher)
    html = client.get(reverse("annotate:export-list")).content.decode()
    assert 'data-testid="withdrawn-items"' in html and str(gone.public_id) in html
    # Marking twice changes nothing.
    assert exports_mark_withdrawn(image_ids=[gone.pk]) == []


def test_the_datasheet_is_readable_by_whoever_may_download_the_export(
    api_client, client, researcher, dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _request(api_client, researcher)
    export = Export.objects.get()
    url = reverse("annotate:export-datasheet", args=[export.pk])

    client.force_login(researcher)
    page = client.get(url)
    listing = client.get(reverse("annotate:export-list")).content.decode()
    client.force_login(user_with_role(Role.RESEARCHER))
    rival = client.get(url)

    assert page.status_code == 200
    assert "# Datasheet: Chest, export v1" in page.content.decode()
    assert url in listing
    assert rival.status_code == 403
