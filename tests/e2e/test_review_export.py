"""A clinician resolves a review item with the keyboard; a researcher exports and downloads.

Screenshots land in artifacts/; docs/screenshots/review-*.png are copies of them.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from accounts.roles import Role
from annotate import consensus
from annotate.models import Dataset, Export, Image, ReviewItem
from annotate.review import review_item_open
from tests.annotate.review_export_factories import (
    consented_image,
    contour,
    dataset_with_classes,
    label,
)
from tests.factories import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


def _lesion_png(size: int = 256, seed: int = 0) -> bytes:
    """A synthetic skin-like picture: warm background, a darker irregular blob."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    r = np.hypot(x - 0.52, y - 0.48) + 0.015 * np.sin(5 * np.arctan2(y - 0.48, x - 0.52))
    blob = np.clip(1.4 - 4.5 * r, 0, 1)
    base = np.stack([215 - 30 * y, 160 - 20 * y, 130 - 10 * x], axis=-1)
    pixels = base * (1 - 0.65 * blob[..., None]) + rng.normal(0, 4, (size, size, 3))
    out = io.BytesIO()
    PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _with_picture(image: Image, seed: int = 0) -> Image:
    image.file.save("lesion.png", ContentFile(_lesion_png(seed=seed)), save=False)
    image.width = image.height = 256
    image.save(update_fields=["file", "width", "height"])
    return image


def _log_in(page, base_url, user):
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_clinician_resolves_with_the_keyboard_and_researcher_downloads(
    new_page, live_server, artifacts
):
    dataset = dataset_with_classes(
        "nevus", "melanoma", slug="skin", name="Skin lesions", retire_min_labels=99, max_labels=99
    )
    dataset.classes.filter(code="nevus").update(colour="#1b9e77", shape="circle")
    dataset.classes.filter(code="melanoma").update(colour="#c8463d", shape="triangle")
    players = [user_with_role(Role.VOLUNTEER) for _ in range(5)]
    image = _with_picture(consented_image(dataset))
    for player, code in zip(
        players, ["nevus", "melanoma", "melanoma", "nevus", "melanoma"], strict=True
    ):
        label(player, image, code)
    for n in range(4):
        other = _with_picture(consented_image(dataset), seed=n + 1)
        for player in players:
            label(player, other, "nevus" if n % 2 else "melanoma")
    consensus.consensus_refit(dataset_id=dataset.pk)
    item = review_item_open(
        image=image,
        reason="disagreement",
        priority=0.7,
        details={"model": {"label": "nevus", "confidence": 0.78, "version": "demo-model-1",
                           "posterior": {"nevus": 0.78, "melanoma": 0.22}}},
    )  # fmt: skip
    clinician = user_with_role(Role.CLINICIAN)
    researcher = user_with_role(Role.RESEARCHER)

    page = new_page(viewport={"width": 1366, "height": 900})
    _log_in(page, live_server.url, clinician)
    page.get_by_role("link", name="Review").click()
    page.get_by_test_id("start-review").click()
    page.wait_for_url(f"**/datasets/review/{item.pk}/")
    page.get_by_test_id("votes").wait_for()
    page.wait_for_function("document.querySelector('#viewer [data-viewer], output').value !== ''")
    page.keyboard.press("+")
    page.keyboard.press("w")
    page.keyboard.press("2")  # the second class: melanoma
    assert page.get_by_label("Choose a label").is_checked()
    page.screenshot(path=str(artifacts / "review-item.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/datasets/review/")
    assert page.get_by_text("Decision saved: your label is gold now.").is_visible()

    item.refresh_from_db()
    image.refresh_from_db()
    assert item.status == ReviewItem.Status.RESOLVED
    assert image.gold_class.code == "melanoma"

    page = new_page(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    _log_in(page, live_server.url, researcher)
    page.get_by_role("link", name="Exports").click()
    page.get_by_label("Minimum confidence").fill("0.5")
    page.get_by_role("button", name="Request export").click()
    download_link = page.get_by_role("link", name="Download")
    download_link.wait_for()
    page.screenshot(path=str(artifacts / "review-export.png"), full_page=True)
    with page.expect_download() as info:
        download_link.click()
    path = info.value.path()

    export = Export.objects.get()
    data = Path(path).read_bytes()
    assert info.value.suggested_filename == "skin-v1.zip"
    assert hashlib.sha256(data).hexdigest() == export.sha256
    rows = zipfile.ZipFile(io.BytesIO(data)).read("labels.csv").decode().splitlines()
    assert f"{image.public_id}," in rows[1] and rows[1].endswith(",clinician")


def test_contour_review_shows_outlines_and_probability_map(new_page, live_server, artifacts):
    dataset = dataset_with_classes(
        "lesion", slug="seg", name="Lesion outlines", task=Dataset.Task.SEGMENTATION
    )
    image = _with_picture(consented_image(dataset))
    rng = np.random.default_rng(3)
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    for n in range(4):
        radius = 70 + 8 * n + rng.normal(0, 4, len(angles))
        points = np.stack([133 + radius * np.cos(angles), 123 + radius * np.sin(angles)], axis=1)
        contour(user_with_role(Role.VOLUNTEER), image, np.round(points, 1).tolist())
    consensus.consensus_mask_update(image_id=image.pk)
    item = review_item_open(image=image, reason="uncertain", priority=0.4)
    page = new_page(viewport={"width": 1366, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    _log_in(page, live_server.url, user_with_role(Role.CLINICIAN))

    page.goto(f"{live_server.url}/datasets/review/{item.pk}/")
    page.get_by_role("button", name="Review this item").click()
    page.get_by_test_id("decision-form").wait_for()
    page.wait_for_function('document.querySelector("[data-viewer=status]").value !== ""')
    page.keyboard.press("x")  # edit the consensus contour
    handles = page.locator("#viewer circle.vertex")
    page.wait_for_timeout(500)
    assert [e for e in errors if "WebSocket" not in e] == []
    handles.first.wait_for()
    box = handles.first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 20, box["y"] + 10)
    page.mouse.up()
    page.screenshot(path=str(artifacts / "review-contour.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/datasets/review/")

    item.refresh_from_db()
    assert item.status == ReviewItem.Status.RESOLVED
    assert item.outcome["action"] == "contour"
    assert image.gold_mask.source == "clinician"
    assert len(image.gold_mask.polygons) == 1
    assert page.locator(".player-outlines polygon").count() == 0  # the queue page now
