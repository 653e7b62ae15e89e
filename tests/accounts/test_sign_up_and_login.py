from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import User
from accounts.roles import Role
from accounts.selectors import user_roles
from accounts.services import user_sign_up
from consent.models import AuditEvent, Donor
from tessera.errors import ApplicationError

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "a-long-unusual-pass-9"


def _sign_up(client, **overrides):
    data = {
        "username": "newplayer",
        "display_name": "Nova",
        "email": "",
        "role": "volunteer",
        "password1": GOOD_PASSWORD,
        "password2": GOOD_PASSWORD,
        **overrides,
    }
    return client.post(reverse("accounts:signup"), data)


def test_volunteer_signs_up_and_lands_on_the_games_page(client):
    response = _sign_up(client)

    assert response.status_code == 302
    assert response["Location"] == reverse("games:index")
    user = User.objects.get(username="newplayer")
    assert user_roles(user=user) == {"volunteer"}
    assert user.has_perm("annotate.play_games")
    assert client.get(reverse("games:index")).status_code == 200
    assert AuditEvent.objects.filter(action="account.signed_up", target_id=str(user.pk)).exists()


def test_donor_sign_up_creates_a_pseudonymous_donor(client):
    _sign_up(client, username="giver", role="donor")

    user = User.objects.get(username="giver")
    donor = Donor.objects.get(user=user)
    assert donor.pseudonym.startswith("D-")
    assert "giver" not in donor.pseudonym
    assert user_roles(user=user) == {"donor"}


def test_privileged_roles_cannot_be_taken_on_sign_up(client):
    response = _sign_up(client, role="admin")

    assert response.status_code == 400
    assert not User.objects.filter(username="newplayer").exists()
    with pytest.raises(ApplicationError):
        user_sign_up(username="sneaky", password=GOOD_PASSWORD, role=Role.CLINICIAN)
    assert not User.objects.filter(username="sneaky").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"password2": "different-pass-123"}, "The two passwords differ."),
        ({"password1": "short", "password2": "short"}, "too short"),
        ({"username": "a b"}, "Use 3–40 letters"),
    ],
)
def test_sign_up_errors_are_shown_and_nothing_is_created(client, overrides, message):
    response = _sign_up(client, **overrides)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert User.objects.count() == 0


def test_duplicate_username_is_refused_case_insensitively(client):
    user_sign_up(username="Taken", password=GOOD_PASSWORD)

    response = _sign_up(client, username="taken")

    assert response.status_code == 400
    assert "That username is taken." in response.content.decode()
    assert User.objects.count() == 1


def test_login_page_logs_in_and_redirects_by_role(client):
    user_sign_up(username="player", password=GOOD_PASSWORD)

    response = client.post(
        reverse("accounts:login"), {"username": "player", "password": GOOD_PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("games:index")


def test_repeated_failed_logins_lock_the_account_out(client, settings):
    user_sign_up(username="target", password=GOOD_PASSWORD)
    url = reverse("accounts:login")

    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": "target", "password": "wrong-guess"})
    locked = client.post(url, {"username": "target", "password": GOOD_PASSWORD})

    assert locked.status_code == 429
    assert "Too many failed log-in attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_games_page_is_for_players_only(client, researcher):
    client.force_login(researcher)

    response = client.get(reverse("games:index"))

    assert response.status_code == 403


def test_navigation_follows_the_role(client, volunteer, researcher):
    client.force_login(volunteer)
    page = client.get(reverse("home")).content.decode()
    assert 'href="/play/"' in page
    assert 'href="/datasets/"' not in page

    client.force_login(researcher)
    page = client.get(reverse("home")).content.decode()
    assert 'href="/play/"' not in page
    assert 'href="/datasets/"' in page
