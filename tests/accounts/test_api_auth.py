from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from accounts.services import api_token_rotate, user_sign_up

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-unusual-pass-9"


def test_token_obtain_and_use(api_client):
    user_sign_up(username="scripter", password=PASSWORD)

    obtained = api_client.post(
        "/api/v1/auth/token/", {"username": "scripter", "password": PASSWORD}
    )
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {obtained.json()['token']}")
    me = api_client.get("/api/v1/me/")

    assert obtained.status_code == 200
    assert me.status_code == 200
    assert me.json()["username"] == "scripter"
    assert me.json()["roles"] == ["volunteer"]


def test_wrong_password_is_a_clean_error(api_client):
    user_sign_up(username="scripter", password=PASSWORD)

    response = api_client.post("/api/v1/auth/token/", {"username": "scripter", "password": "nope"})

    assert response.status_code == 400
    assert response.json() == {
        "message": "Wrong username or password, or the account is locked.",
        "extra": {},
    }
    assert Token.objects.count() == 0


def test_api_refuses_anonymous_requests(api_client):
    response = api_client.get("/api/v1/me/")

    assert response.status_code in (401, 403)
    assert set(response.json()) == {"message", "extra"}


def test_rotating_the_token_revokes_the_old_one(api_client, volunteer):
    old = api_token_rotate(user=volunteer).key
    new = api_token_rotate(user=volunteer).key

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert api_client.get("/api/v1/me/").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert api_client.get("/api/v1/me/").status_code == 200


def test_a_deactivated_accounts_token_is_refused(api_client, volunteer):
    key = api_token_rotate(user=volunteer).key
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api_client.get("/api/v1/me/").json()["username"] == volunteer.username

    volunteer.is_active = False
    volunteer.save(update_fields=["is_active"])

    response = api_client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["message"] == "User inactive or deleted."


def test_account_page_shows_a_new_token_once(client, volunteer):
    client.force_login(volunteer)

    shown = client.post("/accounts/me/token/").content.decode()
    later = client.get("/accounts/me/").content.decode()

    key = Token.objects.get(user=volunteer).key
    assert key in shown
    assert key not in later


def test_role_groups_hold_their_permissions(volunteer, clinician, researcher):
    assert volunteer.has_perm("annotate.play_games")
    assert not volunteer.has_perm("annotate.review_labels")
    assert clinician.has_perm("annotate.review_labels")
    assert researcher.has_perm("annotate.export_datasets")
    assert not researcher.has_perm("annotate.play_games")
