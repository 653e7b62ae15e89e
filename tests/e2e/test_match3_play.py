"""A new volunteer plays a whole match-three level with the keyboard, another on a phone by touch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from annotate.models import Annotation
from games.models import GameSession, ServedImage
from tests.factories import user_with_role
from tests.games.factories import playable_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
THINK_MS = 650  # longer than the level's 400 ms minimum: these answers count


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def _touch(page, locator):
    """A finger tap in the middle of the element (touch events, as on a phone)."""
    page.wait_for_selector("#m3:not([data-busy=true])")
    box = locator.bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def _assert_labels_stored(player, dataset):
    session = GameSession.objects.get(player=player, dataset=dataset, level_id="tutorial")
    counted = Annotation.objects.filter(player=player, is_counted=True)
    assert session.status == "won"
    assert session.state["judgements"] == counted.count()
    assert session.state["judgements"] >= 12
    # Every judgement was "class 1" and is stored as the dataset's first class, for a served image.
    first = dataset.classes.get(order=0)
    assert set(counted.values_list("label_class_id", flat=True)) == {first.pk}
    served = set(ServedImage.objects.filter(player=player).values_list("image_id", flat=True))
    assert set(counted.values_list("image_id", flat=True)) <= served
    assert counted.values("image_id").distinct().count() == counted.count()


def test_new_volunteer_plays_the_tutorial_with_the_keyboard(new_page, live_server, artifacts):
    dataset = playable_dataset(
        classes=("normal", "pneumonia"),
        plain=90,
        with_files=True,
        modality="CR",
        real_images="chest_xray_kermany_subset",
        name="Chest X-ray demo",
    )
    player = user_with_role("volunteer", username="kim_keys")
    page = new_page(viewport={"width": 1280, "height": 800})
    _log_in(page, live_server.url, "kim_keys")

    page.goto(f"{live_server.url}/play/")
    card = page.locator(".dataset-card", has_text="Chest X-ray demo")
    card.get_by_role("link", name="Play match-three").click()
    page.get_by_role("link", name="Play Tutorial").click()
    page.wait_for_selector("#m3[data-ready=true]")
    page.locator(".m3-tile[tabindex='0']").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")  # select the image, then judge it
    page.wait_for_timeout(THINK_MS)
    page.keyboard.press("1")
    page.wait_for_timeout(THINK_MS)
    page.screenshot(path=str(artifacts / "match3-desktop-playing.png"))
    shutil.copy(artifacts / "match3-desktop-playing.png", SCREENSHOTS / "match3-board-desktop.png")
    end = page.locator("[data-role=end-dialog]")
    for _ in range(40):
        page.wait_for_selector("#m3:not([data-busy=true])")
        if end.is_visible():
            break
        page.keyboard.press("1")
        page.wait_for_timeout(THINK_MS)

    assert page.get_by_role("heading", name="Level complete!").is_visible()
    page.screenshot(path=str(artifacts / "match3-desktop-won.png"))
    _assert_labels_stored(player, dataset)


def test_phone_player_finishes_the_tutorial_by_touch(new_page, live_server, artifacts):
    dataset = playable_dataset(
        classes=("nv", "mel", "bkl"),
        plain=90,
        with_files=True,
        name="Skin lesions demo",
        real_images="ham10000_subset",
    )
    player = user_with_role("volunteer", username="pat_phone")
    page = new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    _log_in(page, live_server.url, "pat_phone")

    page.goto(f"{live_server.url}/play/{dataset.slug}/tutorial/")
    page.wait_for_selector("#m3[data-ready=true]")
    first_class = page.locator(".m3-class[data-class='0']")
    end = page.locator("[data-role=end-dialog]")
    for turn in range(40):
        if end.is_visible():
            break
        _touch(page, page.locator(".m3-tile[data-tile]:not(.is-gem):not(.is-pending)").first)
        page.wait_for_timeout(THINK_MS)
        if end.is_visible():
            break
        _touch(page, first_class)
        if turn == 3:
            page.wait_for_timeout(400)
            page.screenshot(path=str(artifacts / "match3-phone-playing.png"))
            shutil.copy(
                artifacts / "match3-phone-playing.png", SCREENSHOTS / "match3-board-phone.png"
            )

    assert page.get_by_role("heading", name="Level complete!").is_visible()
    _assert_labels_stored(player, dataset)


def test_player_reports_an_image_that_looks_wrong(new_page, live_server):
    from annotate.models import ReviewItem

    playable_dataset(classes=("normal", "pneumonia"), plain=40, with_files=True, name="Report demo")
    user_with_role("volunteer", username="rae_reports")
    page = new_page(viewport={"width": 1280, "height": 800})
    _log_in(page, live_server.url, "rae_reports")
    page.goto(f"{live_server.url}/play/")
    page.locator(".dataset-card", has_text="Report demo").get_by_role(
        "link", name="Play match-three"
    ).click()
    page.get_by_role("link", name="Play Tutorial").click()
    page.wait_for_selector("#m3[data-ready=true]")
    tile = page.locator(".m3-tile[data-tile]").first
    image_id = tile.get_attribute("data-image")
    tile.hover()  # a mouse over a tile shows it in the close look

    page.get_by_text("This image looks wrong?").click()
    page.get_by_label("What is wrong with it?").select_option(
        "Upside down, mirrored or colours inverted"
    )
    page.get_by_role("button", name="Report to a clinician").click()
    page.get_by_text("Thank you: a clinician will look at this image.").first.wait_for()

    item = ReviewItem.objects.get(reason=ReviewItem.Reason.REPORTED)
    assert str(item.image.public_id) == image_id
    assert item.details["reports"][0]["text"] == "Upside down, mirrored or colours inverted"
