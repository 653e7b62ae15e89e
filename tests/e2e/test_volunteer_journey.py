from __future__ import annotations

import pytest

from accounts.models import User
from accounts.selectors import user_roles
from tests.factories import ImageFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-unusual-pass-9"


def test_new_volunteer_signs_up_logs_in_and_reaches_the_games(new_page, live_server, artifacts):
    image = ImageFactory(dataset__name="Chest X-ray demo")
    page = new_page(viewport={"width": 1280, "height": 860})

    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill("alice_plays")
    page.get_by_label("Player name").fill("Alice")
    page.get_by_label("Play games and label images").check()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{live_server.url}/play/")

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("link", name="Log in").first.click()
    page.get_by_label("Username").fill("alice_plays")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/play/")

    assert page.get_by_role("heading", name="Play", exact=True).is_visible()
    assert page.get_by_role("heading", name="Chest X-ray demo").is_visible()
    page.screenshot(path=str(artifacts / "e2e-volunteer-games-desktop.png"), full_page=True)
    user = User.objects.get(username="alice_plays")
    assert user_roles(user=user) == {"volunteer"}
    assert user.display_name == "Alice"
    assert image.dataset.images.count() == 1


def test_phone_layout_has_a_working_menu(new_page, live_server, artifacts):
    page = new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)

    page.goto(f"{live_server.url}/")
    sign_up = page.get_by_role("link", name="Sign up")
    assert not sign_up.is_visible()
    page.get_by_role("button", name="Menu").tap()

    assert sign_up.is_visible()
    page.screenshot(path=str(artifacts / "e2e-home-phone.png"), full_page=True)
