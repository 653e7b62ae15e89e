"""Intake end to end through the (eager) Celery task, with real files from the shared data."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import F
from django.urls import reverse

from annotate.models import Image
from consent.models import AuditEvent, IntakeBatch, IntakeItem
from consent.services.intake import intake_batch_create
from tessera.errors import Conflict
from tests.factories import ConsentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_ocr")]


def _upload(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes())


def _run(django_capture_on_commit_callbacks, **kwargs) -> IntakeBatch:
    with django_capture_on_commit_callbacks(execute=True):
        batch = intake_batch_create(**kwargs)
    return batch


def _items(batch: IntakeBatch) -> list[IntakeItem]:
    # NULL parents (the archive itself) first on every database.
    return list(batch.items.order_by("position", F("parent_id").asc(nulls_first=True), "id"))


def test_real_dicom_and_jpeg_become_images_and_uploads_are_deleted(
    django_capture_on_commit_callbacks, donor_user, donor_consent, dataset, mr_files, xray_files
):
    batch = _run(
        django_capture_on_commit_callbacks,
        uploaded_by=donor_user,
        consent=donor_consent,
        dataset=dataset,
        files=[_upload(mr_files[20]), _upload(xray_files[0], "photo.dat")],
    )

    dicom_item, jpeg_item = _items(batch)
    assert [(i.status, i.kind, i.code) for i in (dicom_item, jpeg_item)] == [
        ("accepted", "dicom", ""),
        ("accepted", "jpeg", ""),
    ]
    assert (dicom_item.image.status, dicom_item.image.modality) == (Image.Status.ACTIVE, "MR")
    assert (dicom_item.image.width, dicom_item.image.height) == (64, 64)
    assert dicom_item.image.donor_id == donor_consent.donor_id
    assert dicom_item.image.file.name.endswith((".webp", ".png"))
    assert dicom_item.image.thumbnail.name.endswith(".jpg")
    cleaned = pydicom.dcmread(dicom_item.cleaned_file.open("rb"))
    assert cleaned.PatientIdentityRemoved == "YES"
    assert jpeg_item.image.file.name.endswith(".jpg")
    assert jpeg_item.sha256 == jpeg_item.image.sha256 and len(jpeg_item.phash) == 16
    # The uploads were held only until the task ran.
    assert [i.upload.name for i in (dicom_item, jpeg_item)] == ["", ""]
    assert default_storage.listdir(f"intake-tmp/{batch.public_id.hex}") == ([], [])
    assert AuditEvent.objects.filter(action="intake.item_stored").count() == 2


def test_corrupt_truncated_and_unsupported_files_are_rejected_with_reasons(
    django_capture_on_commit_callbacks, donor_user, donor_consent, dataset, mr_files
):
    real = mr_files[3].read_bytes()
    batch = _run(
        django_capture_on_commit_callbacks,
        uploaded_by=donor_user,
        consent=donor_consent,
        dataset=dataset,
        files=[
            SimpleUploadedFile("truncated.dcm", real[: len(real) // 2]),
            SimpleUploadedFile("notes.txt", b"Patient John Doe, born 1970"),
            SimpleUploadedFile("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
            SimpleUploadedFile("empty.jpg", b""),
        ],
    )

    items = _items(batch)
    assert [i.status for i in items] == ["rejected"] * 4
    assert all(i.reason and i.code for i in items)
    assert items[1].code == "unsupported_format"
    assert "John" not in " ".join(i.reason for i in items)
    assert Image.objects.count() == 0
    assert [i.upload.name for i in items] == [""] * 4


def test_zip_upload_is_unpacked_member_by_member(
    django_capture_on_commit_callbacks, donor_user, donor_consent, dataset, mr_files
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../etc/slice1.dcm", mr_files[0].read_bytes())
        archive.writestr("series/slice2.dcm", mr_files[1].read_bytes())
        archive.writestr("readme.txt", b"not an image")
    batch = _run(
        django_capture_on_commit_callbacks,
        uploaded_by=donor_user,
        consent=donor_consent,
        dataset=dataset,
        files=[SimpleUploadedFile("series.zip", buffer.getvalue())],
    )

    archive_item, *members = _items(batch)
    assert (archive_item.status, archive_item.reason) == ("unpacked", "Archive with 3 files.")
    assert [(m.name, m.status, m.parent_id) for m in members] == [
        ("slice1.dcm", "accepted", archive_item.pk),
        ("slice2.dcm", "accepted", archive_item.pk),
        ("readme.txt", "rejected", archive_item.pk),
    ]
    assert Image.objects.filter(dataset=dataset).count() == 2


def test_exact_duplicates_are_rejected_and_near_duplicates_flagged(
    django_capture_on_commit_callbacks, donor_user, donor_consent, dataset, mr_files
):
    # Slices 20 and 21 of one series are neighbours: the same anatomy, a few pixels apart.
    batch = _run(
        django_capture_on_commit_callbacks,
        uploaded_by=donor_user,
        consent=donor_consent,
        dataset=dataset,
        files=[_upload(mr_files[20]), _upload(mr_files[20], "copy.dcm"), _upload(mr_files[21])],
    )

    first, copy, neighbour = _items(batch)
    assert (first.status, copy.status, copy.code) == ("accepted", "rejected", "duplicate")
    assert copy.reason == "An identical image is already on Tessera, so this copy was not added."
    assert neighbour.status == "accepted"
    assert "near_duplicate" in neighbour.flags
    assert neighbour.near_duplicate_of_id == first.image_id
    assert Image.objects.count() == 2


def test_intake_refuses_a_consent_that_does_not_permit_games(donor_user, dataset, mr_files):
    consent = ConsentFactory(
        donor=donor_user.donor, decisions={"annotation": "deny", "research_export": "permit"}
    )

    with pytest.raises(Conflict, match="does not permit labelling"):
        intake_batch_create(
            uploaded_by=donor_user, consent=consent, dataset=dataset, files=[_upload(mr_files[0])]
        )
    assert IntakeBatch.objects.count() == 0


def test_burned_in_text_goes_to_quarantine(
    django_capture_on_commit_callbacks, donor_user, donor_consent, dataset, mr_files
):
    ds = pydicom.dcmread(mr_files[10])
    ds.BurnedInAnnotation = "YES"
    out = io.BytesIO()
    ds.save_as(out)
    batch = _run(
        django_capture_on_commit_callbacks,
        uploaded_by=donor_user,
        consent=donor_consent,
        dataset=dataset,
        files=[SimpleUploadedFile("burned.dcm", out.getvalue())],
    )

    (item,) = _items(batch)
    assert item.status == "quarantined"
    assert "burned_in_declared" in item.flags
    assert item.image.status == Image.Status.QUARANTINED


def test_upload_page_and_progress_endpoint(
    client, django_capture_on_commit_callbacks, donor_user, donor_consent, dataset, mr_files
):
    client.force_login(donor_user)
    assert client.get(reverse("consent:upload")).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("consent:upload"),
            {
                "consent": donor_consent.pk,
                "dataset": dataset.pk,
                "files": [_upload(mr_files[5]), _upload(mr_files[6])],
            },
        )
    batch = IntakeBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("consent:batch", args=[batch.public_id])
    progress = client.get(reverse("api-intake-batch", args=[batch.public_id])).json()
    assert (progress["total"], progress["done"], progress["finished"]) == (2, 2, True)
    assert progress["counts"]["accepted"] == 2
    assert [row["name"] for row in progress["items"]] == ["0006.dcm", "0007.dcm"]
    page = client.get(response["Location"])
    assert "2 of 2 files processed: done." in page.content.decode()
