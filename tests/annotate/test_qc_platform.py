"""Intake QC in the platform: flags quarantine, reviewers settle them, fixes rewrite pixels."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from accounts.roles import Role
from annotate.models import Image, ImageQc, ReviewItem
from annotate.qc import scoring
from annotate.qc.scoring import qc_dataset_score, qc_image_score
from annotate.qc.services import qc_resolve
from annotate.qc.training import qc_training_images
from annotate.review import review_decision_submit, review_item_claim, review_item_report
from annotate.selection import next_images_select
from consent.models import AuditEvent
from tessera.errors import Conflict
from tests.annotate.qc_helpers import StubModel, image_with_pixels, pixels, ready_version, stored
from tests.factories import DatasetFactory, ImageFactory, user_with_role

pytestmark = pytest.mark.django_db

ROTATED, INVERTED, OOD = 1, 2, 3  # top-left pixel values the stub detector answers to


@pytest.fixture
def dataset():
    return DatasetFactory(slug="chest-qc", name="Chest QC")


@pytest.fixture
def stub(monkeypatch, dataset):
    ready_version(dataset)
    model = StubModel(
        {
            ROTATED: {"orientation": "rotate_cw_90"},
            INVERTED: {"inverted": True},
            OOD: {"ood": 50.0},
        }
    )
    monkeypatch.setattr(scoring, "_load", lambda version: model)
    return model


def _image(dataset, key: int = 0, seed: int = 0):  # type: ignore[no-untyped-def]
    arr = pixels(seed)
    arr[0, 0] = key if key else 200 + seed % 50
    return image_with_pixels(dataset, arr), arr


def _pool(dataset, player) -> set[int]:  # type: ignore[no-untyped-def]
    """What match-three would draw next for `player` (the real selector, no gold)."""
    chosen = next_images_select(
        player_id=player.pk,
        dataset=dataset,
        count=50,
        gold_rate=0.0,
        rng=np.random.default_rng(0),
    )
    return {s.image_id for s in chosen}


def test_a_flagged_image_leaves_the_game_pool_until_it_is_reviewed(dataset, stub, volunteer):
    rotated, _ = _image(dataset, ROTATED)
    fine, _ = _image(dataset, seed=1)

    assert qc_image_score(image_id=fine.pk).state == ImageQc.State.CLEAR
    qc = qc_image_score(image_id=rotated.pk)

    assert (qc.state, qc.suggested_fix) == (ImageQc.State.PENDING, ["rotate_ccw_90"])
    assert qc.fix_text == "rotate 90° counterclockwise back"
    assert [r["detector"] for r in qc.reasons] == ["rotation"]
    assert qc.rotation_deg_cw == 90 and qc.p_rotated > 0.99
    rotated.refresh_from_db()
    assert rotated.status == Image.Status.QUARANTINED
    item = ReviewItem.objects.get(image=rotated, status="open")
    assert item.reason == ReviewItem.Reason.QUARANTINE
    assert item.details["source"] == "qc"
    assert item.details["qc"]["suggested_fix"] == ["rotate_ccw_90"]
    assert _pool(dataset, volunteer) == {fine.pk}

    qc_resolve(image_id=rotated.pk, state=ImageQc.State.KEPT, actor_id=volunteer.pk)

    assert _pool(dataset, volunteer) == {fine.pk, rotated.pk}


def test_accept_fix_rewrites_the_stored_pixels_and_returns_the_image_to_play(
    dataset, stub, client, django_capture_on_commit_callbacks
):
    coordinator = user_with_role(Role.COORDINATOR)
    image, original = _image(dataset, ROTATED)
    old_file, old_thumb = image.file.name, image.thumbnail.name
    qc_image_score(image_id=image.pk)
    client.force_login(coordinator)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("annotate:dataset-qc-decide", args=[dataset.slug, image.public_id]),
            {"action": "accept_fix"},
            HTTP_ACCEPT="application/json",
        )

    assert response.status_code == 200
    assert response.json() == {"image": str(image.public_id), "state": "fixed", "status": "active"}
    image.refresh_from_db()
    # Turned 90° clockwise at intake: the fix turns it 90° counterclockwise.
    assert np.array_equal(stored(image.file), np.rot90(original, 1))
    assert np.array_equal(stored(image.thumbnail), np.rot90(original, 1))
    assert (image.width, image.height) == (8, 12)
    assert image.status == Image.Status.ACTIVE
    assert not default_storage.exists(old_file) and not default_storage.exists(old_thumb)
    assert ImageQc.objects.get(image=image).reviewed_by_id == coordinator.pk
    item = ReviewItem.objects.get(image=image)
    assert (item.status, item.outcome["qc"], item.outcome["action"]) == (
        "resolved",
        "fixed",
        "release",
    )
    event = AuditEvent.objects.get(action="qc.resolved")
    assert (event.actor_id, event.details["fix"]) == (coordinator.pk, ["rotate_ccw_90"])


def test_accepting_an_inversion_fix_inverts_the_pixels(dataset, stub):
    image, original = _image(dataset, INVERTED)
    qc_image_score(image_id=image.pk)
    reviewer = user_with_role(Role.CLINICIAN)

    qc_resolve(image_id=image.pk, state=ImageQc.State.FIXED, actor_id=reviewer.pk)

    image.refresh_from_db()
    assert np.array_equal(stored(image.file), 255 - original)
    assert (image.width, image.height, image.status) == (12, 8, Image.Status.ACTIVE)


@pytest.mark.parametrize(
    ("action", "state", "status"),
    [("keep", "kept", Image.Status.ACTIVE), ("unusable", "unusable", Image.Status.UNUSABLE)],
)
def test_keep_and_unusable_never_touch_the_pixels(dataset, stub, client, action, state, status):
    image, _ = _image(dataset, ROTATED)
    before = image.file.open("rb").read()
    name = image.file.name
    qc_image_score(image_id=image.pk)
    client.force_login(user_with_role(Role.CLINICIAN))

    response = client.post(
        reverse("annotate:dataset-qc-decide", args=[dataset.slug, image.public_id]),
        {"action": action},
    )

    assert response.status_code == 302
    assert response.url == reverse("annotate:dataset-qc", args=[dataset.slug])
    image.refresh_from_db()
    assert (image.status, image.file.name) == (status, name)
    assert image.file.open("rb").read() == before
    assert ImageQc.objects.get(image=image).state == state
    assert ReviewItem.objects.get(image=image).status == "resolved"


def test_a_decided_flag_cannot_be_decided_again(dataset, stub):
    image, _ = _image(dataset, ROTATED)
    qc_image_score(image_id=image.pk)
    reviewer = user_with_role(Role.CLINICIAN)
    qc_resolve(image_id=image.pk, state=ImageQc.State.KEPT, actor_id=reviewer.pk)

    with pytest.raises(Conflict):
        qc_resolve(image_id=image.pk, state=ImageQc.State.FIXED, actor_id=reviewer.pk)
    # Scoring again does not re-flag what a reviewer kept.
    assert qc_image_score(image_id=image.pk).state == ImageQc.State.KEPT
    assert Image.objects.get(pk=image.pk).status == Image.Status.ACTIVE


def test_an_ood_flag_has_no_fix_to_accept(dataset, stub, client):
    image, _ = _image(dataset, OOD)
    qc = qc_image_score(image_id=image.pk)
    client.force_login(user_with_role(Role.ADMIN))

    response = client.post(
        reverse("annotate:dataset-qc-decide", args=[dataset.slug, image.public_id]),
        {"action": "accept_fix"},
        HTTP_ACCEPT="application/json",
    )

    assert (qc.suggested_fix, [r["detector"] for r in qc.reasons]) == ([], ["ood"])
    assert response.status_code == 400
    assert ImageQc.objects.get(image=image).state == "pending"
    assert Image.objects.get(pk=image.pk).status == Image.Status.QUARANTINED


@pytest.mark.parametrize(("action", "state"), [("release", "kept"), ("unusable", "unusable")])
def test_clinician_review_settles_the_qc_flag_the_same_way(dataset, stub, action, state):
    image, _ = _image(dataset, ROTATED)
    qc_image_score(image_id=image.pk)
    clinician = user_with_role(Role.CLINICIAN)
    item = ReviewItem.objects.get(image=image, status="open")

    review_item_claim(item_id=item.pk, user=clinician)
    review_decision_submit(item_id=item.pk, user=clinician, action=action)

    qc = ImageQc.objects.get(image=image)
    assert (qc.state, qc.reviewed_by_id) == (state, clinician.pk)
    image.refresh_from_db()
    assert image.status == ("active" if action == "release" else "unusable")
    assert AuditEvent.objects.filter(action="qc.resolved", actor_id=clinician.pk).count() == 1


def test_the_review_page_offers_the_fix_and_the_grid_path_resolves_the_item(dataset, stub, client):
    image, _ = _image(dataset, ROTATED)
    qc_image_score(image_id=image.pk)
    clinician = user_with_role(Role.CLINICIAN)
    item = ReviewItem.objects.get(image=image, status="open")
    client.force_login(clinician)

    page = client.get(reverse("annotate:review-item", args=[item.pk]))
    decide = reverse("annotate:dataset-qc-decide", args=[dataset.slug, image.public_id])
    response = client.post(
        decide, {"action": "accept_fix", "next": reverse("annotate:review-queue")}
    )

    assert page.status_code == 200
    assert b"rotate 90\xc2\xb0 counterclockwise back" in page.content
    assert decide.encode() in page.content
    assert response.url == reverse("annotate:review-queue")
    item.refresh_from_db()
    assert (item.status, item.outcome["qc"]) == ("resolved", "fixed")


def test_the_grid_shows_flags_with_a_previewed_fix(dataset, stub, client):
    rotated, _ = _image(dataset, ROTATED)
    inverted, _ = _image(dataset, INVERTED)
    fine, _ = _image(dataset, seed=3)
    for image in (rotated, inverted, fine):
        qc_image_score(image_id=image.pk)
    client.force_login(user_with_role(Role.COORDINATOR))

    response = client.get(reverse("annotate:dataset-qc", args=[dataset.slug]))

    assert response.status_code == 200
    cards = response.context["overview"].flagged
    assert [c.qc.image_id for c in cards] == [rotated.pk, inverted.pk]
    assert [(c.css_transform, c.css_filter) for c in cards] == [
        ("rotate(-90deg)", "none"),
        ("none", "invert(1)"),
    ]
    assert response.context["overview"].n_pending == 2
    html = response.content.decode()
    assert "transform: rotate(-90deg)" in html and "↻ rotated" in html and "◐ inverted" in html
    assert str(fine.public_id) not in html


# --- permissions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.VOLUNTEER, Role.RESEARCHER, Role.DONOR])
def test_other_roles_get_no_grid_and_change_nothing(dataset, stub, client, role):
    image, _ = _image(dataset, ROTATED)
    qc_image_score(image_id=image.pk)
    before = image.file.open("rb").read()
    client.force_login(user_with_role(role))
    urls = [
        reverse("annotate:dataset-qc-decide", args=[dataset.slug, image.public_id]),
        reverse("annotate:dataset-qc-train", args=[dataset.slug]),
        reverse("annotate:dataset-qc-score", args=[dataset.slug]),
    ]

    page = client.get(reverse("annotate:dataset-qc", args=[dataset.slug]))
    posts = [client.post(url, {"action": "accept_fix"}) for url in urls]

    assert page.status_code == 403
    assert [p.status_code for p in posts] == [403, 403, 403]
    assert ImageQc.objects.get(image=image).state == "pending"
    image.refresh_from_db()
    assert (image.status, image.file.open("rb").read()) == (Image.Status.QUARANTINED, before)
    assert not AuditEvent.objects.filter(action="qc.resolved").exists()


def test_anonymous_visitors_are_sent_to_log_in(dataset, client):
    response = client.get(reverse("annotate:dataset-qc", args=[dataset.slug]))

    assert response.status_code == 302 and "/accounts/" in response.url


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.CLINICIAN, Role.ADMIN])
def test_reviewers_see_the_grid_and_the_link(dataset, client, role):
    client.force_login(user_with_role(role))

    grid = client.get(reverse("annotate:dataset-qc", args=[dataset.slug]))
    detail = client.get(reverse("annotate:dataset-detail", args=[dataset.slug]))

    assert grid.status_code == 200
    assert reverse("annotate:dataset-qc", args=[dataset.slug]).encode() in detail.content


def test_an_image_of_another_dataset_cannot_be_decided_through_this_one(dataset, stub, client):
    other = DatasetFactory(slug="other")
    ready_version(other)
    image, _ = _image(other, ROTATED)
    qc_image_score(image_id=image.pk)
    client.force_login(user_with_role(Role.COORDINATOR))

    response = client.post(
        reverse("annotate:dataset-qc-decide", args=[dataset.slug, image.public_id]),
        {"action": "keep"},
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 403
    assert ImageQc.objects.get(image=image).state == "pending"


def test_clinicians_review_but_only_coordinators_and_admins_queue_training(
    dataset, client, django_capture_on_commit_callbacks
):
    client.force_login(user_with_role(Role.CLINICIAN))
    denied = client.post(reverse("annotate:dataset-qc-train", args=[dataset.slug]))
    client.force_login(user_with_role(Role.COORDINATOR))
    with django_capture_on_commit_callbacks(execute=True):
        queued = client.post(reverse("annotate:dataset-qc-train", args=[dataset.slug]))

    assert denied.status_code == 403
    assert queued.status_code == 302  # too few images: the task records a failed version
    assert dataset.qc_models.get().status == "failed"


# --- intake hook, batch job, training data ---------------------------------------------------------


def test_intake_queues_scoring_of_the_stored_image(
    dataset, stub, settings, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from consent.services.intake import intake_batch_create
    from tests.factories import ConsentFactory

    settings.INTAKE_OCR_ENABLED = False
    arr = pixels(5, shape=(64, 48))
    arr[0, 0] = ROTATED
    consent = ConsentFactory()

    with django_capture_on_commit_callbacks(execute=True):
        intake_batch_create(
            uploaded_by=None,
            consent=consent,
            dataset=dataset,
            files=[SimpleUploadedFile("scan.png", png_of(arr))],
        )

    image = Image.objects.get(dataset=dataset)
    assert stub.calls == 1
    assert ImageQc.objects.get(image=image).state == "pending"
    assert image.status == Image.Status.QUARANTINED
    assert ReviewItem.objects.filter(image=image, reason="quarantine", status="open").exists()


def png_of(arr):  # type: ignore[no-untyped-def]
    from tests.annotate.qc_helpers import png

    return png(arr)


def test_intake_without_a_qc_model_stores_the_image_in_play(
    dataset, settings, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from consent.services.intake import intake_batch_create
    from tests.factories import ConsentFactory

    settings.INTAKE_OCR_ENABLED = False
    with django_capture_on_commit_callbacks(execute=True):
        intake_batch_create(
            uploaded_by=None,
            consent=ConsentFactory(),
            dataset=dataset,
            files=[SimpleUploadedFile("scan.png", png_of(pixels(6, shape=(64, 48))))],
        )

    image = Image.objects.get(dataset=dataset)
    assert image.status == Image.Status.ACTIVE
    assert not ImageQc.objects.exists()


def test_the_batch_job_scores_a_dataset_once_and_resumes(dataset, stub, capsys):
    from django.core.management import call_command

    images = [_image(dataset, seed=k)[0] for k in range(5)] + [_image(dataset, ROTATED)[0]]

    call_command("qc_score", dataset.slug)
    again = qc_dataset_score(dataset_id=dataset.pk)

    out = capsys.readouterr().out
    assert "scored 6 images with QC model v1" in out and "1 flagged for review" in out
    assert again.n_scored == 0
    assert ImageQc.objects.filter(dataset=dataset).count() == 6
    assert Image.objects.get(pk=images[-1].pk).status == Image.Status.QUARANTINED
    assert AuditEvent.objects.filter(action="qc.dataset_scored").count() == 2


def test_training_leaves_out_flagged_reported_and_unusable_images(dataset, stub, volunteer):
    clean = [_image(dataset, seed=k)[0] for k in range(3)]
    flagged, _ = _image(dataset, ROTATED)
    qc_image_score(image_id=flagged.pk)
    reported, _ = _image(dataset, seed=10)
    review_item_report(image=reported, player=volunteer, reason_text="upside down")
    unusable, _ = _image(dataset, seed=11)
    Image.objects.filter(pk=unusable.pk).update(status=Image.Status.UNUSABLE)
    kept, _ = _image(dataset, ROTATED)
    qc_image_score(image_id=kept.pk)
    qc_resolve(image_id=kept.pk, state=ImageQc.State.KEPT, actor_id=volunteer.pk)

    images, n_excluded = qc_training_images(dataset=dataset)

    assert {i.pk for i in images} == {*(i.pk for i in clean), kept.pk}
    assert n_excluded == 1  # the reported one; flagged and unusable are not in play


def test_a_withdrawn_image_leaves_the_grid_and_cannot_be_fixed(dataset, stub, client):
    image, _ = _image(dataset, ROTATED)
    qc_image_score(image_id=image.pk)
    image.file.delete(save=False)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.WITHDRAWN, file="")
    client.force_login(user_with_role(Role.COORDINATOR))

    page = client.get(reverse("annotate:dataset-qc", args=[dataset.slug]))
    response = client.post(
        reverse("annotate:dataset-qc-decide", args=[dataset.slug, image.public_id]),
        {"action": "accept_fix"},
        HTTP_ACCEPT="application/json",
    )

    assert page.context["overview"].flagged == [] and page.context["overview"].n_pending == 0
    assert response.status_code == 409
    assert ImageQc.objects.get(image=image).state == "pending"


def test_deciding_a_player_report_also_settles_a_pending_qc_flag(dataset, stub, volunteer):
    image, _ = _image(dataset, ROTATED)
    qc_image_score(image_id=image.pk)
    reported = review_item_report(image=image, player=volunteer, reason_text="sideways")
    clinician = user_with_role(Role.CLINICIAN)

    review_item_claim(item_id=reported.pk, user=clinician)
    review_decision_submit(item_id=reported.pk, user=clinician, action="unusable")

    assert ImageQc.objects.get(image=image).state == "unusable"
    assert not ReviewItem.objects.filter(image=image, status="open").exists()
    assert Image.objects.get(pk=image.pk).status == Image.Status.UNUSABLE


def test_the_uploader_sees_that_a_flagged_image_is_held_for_a_check():
    from consent.models import IntakeBatch, IntakeItem
    from consent.selectors import intake_batch_progress

    image = ImageFactory(status=Image.Status.QUARANTINED)
    ImageQc.objects.create(
        image=image,
        dataset=image.dataset,
        state=ImageQc.State.PENDING,
        reasons=["inverted"],
        fix_text="inverted (p 1.00) → invert back",
    )
    batch = IntakeBatch.objects.create(
        donor=image.donor, consent=image.consent, dataset=image.dataset
    )
    IntakeItem.objects.create(
        batch=batch,
        name="x.png",
        status=IntakeItem.Status.ACCEPTED,
        image=image,
        reason="De-identified and added to the games.",
    )

    (row,) = intake_batch_progress(batch=batch)["items"]

    assert "held for a quality check (inverted (p 1.00) → invert back)" in row["reason"]


def test_a_newer_model_that_sees_no_problem_marks_a_pending_flag_but_never_releases_it(
    dataset, stub
):
    image, _ = _image(dataset, ROTATED)
    qc_image_score(image_id=image.pk)
    from annotate.models import QcModelVersion

    first = QcModelVersion.objects.get(dataset=dataset)
    newer = QcModelVersion.objects.create(
        dataset=dataset,
        version=2,
        status=first.status,
        file=first.file.name,
        enabled=first.enabled,
        thresholds=first.thresholds,
        started_at=first.started_at,
        finished_at=first.finished_at,
    )
    stub.verdicts = {}  # the newer detectors flag nothing

    qc_dataset_score(dataset_id=dataset.pk)

    qc = ImageQc.objects.get(image=image)
    assert (qc.state, qc.qc_model_id, qc.scores["cleared_by_version"]) == ("pending", newer.pk, 2)
    assert Image.objects.get(pk=image.pk).status == Image.Status.QUARANTINED
