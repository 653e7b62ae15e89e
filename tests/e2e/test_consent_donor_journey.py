"""A donor signs up, consents, uploads a real JPEG and a real DICOM, sees them processed,
withdraws, and the images are gone — in real headless Chromium against a live server."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from annotate.models import Image
from consent.models import Consent, IntakeItem, Purpose
from tests.factories import ConsentFormFactory, DatasetFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-unusual-pass-9"


@pytest.fixture(autouse=True)
def _no_ocr(settings):
    # Intake runs eagerly in the live server's request thread (tests/conftest.py); OCR is
    # tested in tests/consent/deid and would only slow this journey down.
    settings.INTAKE_OCR_ENABLED = False


def _real_files() -> list[Path]:
    images = Path(settings.DATA_DIR) / "images"
    jpeg = sorted((images / "chest_xray_kermany_subset" / "images").glob("*.jpg"))[0]
    dicom = sorted((images / "dicom_mr_brain_toshiba").rglob("*.dcm"))[20]
    assert jpeg.is_file() and dicom.is_file(), f"shared data missing under {images}"
    return [jpeg, dicom]


def test_donor_consents_uploads_and_withdraws(new_page, live_server, artifacts):
    ConsentFormFactory(
        slug="donation",
        title="Donating images to Tessera",
        text="Your de-identified images may be labelled in games and exported to researchers.",
        purposes=[Purpose.ANNOTATION, Purpose.RESEARCH_EXPORT],
    )
    DatasetFactory(name="Chest and brain demo")
    page = new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    url = live_server.url

    page.goto(f"{url}/accounts/signup/")
    page.get_by_label("Username").fill("dora_donor")
    page.get_by_label("Donate my images").check()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{url}/")

    page.goto(f"{url}/consent/")
    page.get_by_role("link", name="Read and decide").click()
    page.get_by_role("group", name="Labelling in annotation games").get_by_label(
        "Yes, I agree"
    ).check()
    page.get_by_role("group", name="Export to researchers").get_by_label("No").check()
    page.screenshot(path=str(artifacts / "e2e-consent-sign-phone.png"), full_page=True)
    page.get_by_role("button", name="Sign this consent").click()
    code = page.get_by_test_id("revocation-code").inner_text()
    assert len(code) == 19

    page.get_by_role("link", name="Upload images").click()
    page.get_by_label("What do the images show?").select_option(label="Chest and brain demo")
    page.set_input_files("input[type=file]", [str(p) for p in _real_files()])
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(f"{url}/consent/uploads/**")
    summary = page.locator("#intake-summary")
    summary.filter(has_text="2 of 2 files processed: done.").wait_for()
    assert page.locator("#intake-items tr[data-status=accepted]").count() == 2
    page.screenshot(path=str(artifacts / "e2e-consent-upload-processed.png"), full_page=True)

    page.goto(f"{url}/consent/images/")
    thumbs = page.locator("[data-testid=donor-image] img")
    assert thumbs.count() == 2
    # Both thumbnails load (they are served through the access-checked view).
    page.wait_for_function(
        "[...document.querySelectorAll('[data-testid=donor-image] img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    page.screenshot(path=str(artifacts / "e2e-consent-my-images-phone.png"), full_page=True)
    image_urls = [
        f"{url}/datasets/images/{public_id}/"
        for public_id in Image.objects.values_list("public_id", flat=True)
    ]
    assert [page.request.get(u).status for u in image_urls] == [200, 200]

    page.goto(f"{url}/consent/")
    page.get_by_role("link", name="Withdraw consent").click()
    page.get_by_role("button", name="Yes, withdraw my consent").click()
    page.wait_for_url(f"{url}/consent/")
    assert page.get_by_text("Consent withdrawn. 2 image(s) were removed").is_visible()

    page.goto(f"{url}/consent/images/")
    assert page.locator("[data-testid=donor-image][data-status=withdrawn]").count() == 2
    assert page.locator("[data-testid=donor-image] img").count() == 0
    page.screenshot(path=str(artifacts / "e2e-consent-withdrawn-phone.png"), full_page=True)
    assert [page.request.get(u).status for u in image_urls] == [404, 404]
    assert Consent.objects.get().status == "withdrawn"
    assert set(Image.objects.values_list("status", "file", "thumbnail")) == {("withdrawn", "", "")}
    assert set(IntakeItem.objects.values_list("status", flat=True)) == {"withdrawn"}
