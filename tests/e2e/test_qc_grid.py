"""A coordinator opens a dataset's intake-QC grid in headless Chromium and accepts a fix with the
keyboard; the stored pixels turn back. Screenshot: artifacts/qc-grid.png (docs/screenshots copy)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from PIL import Image as PILImage
from playwright.sync_api import expect

from accounts.roles import Role
from annotate.models import Image, ImageQc
from annotate.qc import scoring
from annotate.services import CleanImage, dataset_ensure, image_create
from tests.annotate.qc_helpers import fake_scores, ready_version, stored
from tests.factories import ConsentFactory, user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


class _Says:
    def __init__(self, **verdict) -> None:
        self.verdict = verdict

    def score(self, arrays):  # type: ignore[no-untyped-def]
        return [fake_scores(**self.verdict) for _ in arrays]


def _clean(pil: PILImage.Image) -> CleanImage:
    pil = pil.convert("L")
    out = io.BytesIO()
    pil.save(out, format="PNG")
    thumb = pil.copy()
    thumb.thumbnail((256, 256))
    small = io.BytesIO()
    thumb.save(small, format="JPEG", quality=90)
    return CleanImage(
        content=out.getvalue(),
        extension="png",
        thumbnail=small.getvalue(),
        width=pil.width,
        height=pil.height,
        sha256=str(abs(hash(out.getvalue()))),
        phash="",
    )


def test_coordinator_accepts_a_fix_from_the_grid(new_page, live_server, artifacts, monkeypatch):
    root = Path(settings.DATA_DIR) / "images" / "chest_xray_kermany_subset"
    rows = list(csv.DictReader((root / "labels.csv").open()))[:6]
    dataset = dataset_ensure(
        slug="chest", name="Chest X-ray", classes=[("NORMAL", "Normal"), ("PNEUMONIA", "Pneumonia")]
    )
    ready_version(dataset)
    consent = ConsentFactory()
    verdicts = [
        ({"orientation": "rotate_cw_90"}, lambda p: p.transpose(PILImage.Transpose.ROTATE_270)),
        ({"inverted": True}, lambda p: PILImage.eval(p.convert("L"), lambda v: 255 - v)),
        ({"ood": 42.0}, lambda p: p),
        ({}, lambda p: p),
    ]
    images, originals = [], []
    for row, (verdict, corrupt) in zip(rows, verdicts, strict=False):
        with PILImage.open(root / "images" / row["file"]) as pil:
            pil = pil.convert("L").resize((192, 160))
            originals.append(np.asarray(pil))
            image = image_create(
                dataset=dataset, consent=consent, clean=_clean(corrupt(pil)), source_ref=row["file"]
            )
        monkeypatch.setattr(scoring, "_load", lambda version, v=verdict: _Says(**v))
        scoring.qc_image_score(image_id=image.pk)
        images.append(image)
    coordinator = user_with_role(Role.COORDINATOR)
    page = new_page(viewport={"width": 1280, "height": 900})

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(coordinator.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/datasets/chest/")
    page.get_by_test_id("qc-link").click()

    cards = page.get_by_test_id("qc-card")
    assert cards.count() == 3
    assert page.get_by_test_id("qc-pending").inner_text() == "3"
    first = cards.nth(0)
    assert "rotate 90° counterclockwise back" in first.inner_text()
    preview = first.locator(".qc-preview img")
    assert "rotate(-90deg)" in preview.get_attribute("style")
    # The first card has the focus (once the grid's module has run; a key pressed before that
    # reaches no handler): A accepts its fix, without a page load.
    expect(first).to_be_focused()
    page.keyboard.press("a")
    page.locator("[data-qc-card].is-done").first.wait_for()
    assert page.get_by_test_id("qc-pending").inner_text() == "2"
    assert "fix applied" in page.locator("[data-qc-status]").inner_text()
    page.screenshot(path=str(artifacts / "qc-grid.png"), full_page=True)

    rotated = Image.objects.get(pk=images[0].pk)
    assert rotated.status == Image.Status.ACTIVE
    assert (rotated.width, rotated.height) == (192, 160)
    assert np.array_equal(stored(rotated.file), originals[0])
    assert ImageQc.objects.get(image=rotated).state == "fixed"
    # The next card (the inverted one) has the focus now: K keeps it as it is.
    page.keyboard.press("k")
    page.wait_for_function("document.querySelectorAll('[data-qc-card].is-done').length === 2")
    inverted = Image.objects.get(pk=images[1].pk)
    assert ImageQc.objects.get(image=inverted).state == "kept"
    assert np.array_equal(stored(inverted.file), 255 - originals[1])
    assert Image.objects.get(pk=images[2].pk).status == Image.Status.QUARANTINED
