from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.roles import Role
from tests.factories import user_with_role


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    # Hashing is not under test here; PBKDF2 would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Tests talk plain HTTP to the test client, also in the CI run with production settings.
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def volunteer(db):
    return user_with_role(Role.VOLUNTEER)


@pytest.fixture
def clinician(db):
    return user_with_role(Role.CLINICIAN)


@pytest.fixture
def researcher(db):
    return user_with_role(Role.RESEARCHER)


@pytest.fixture
def donor_user(db):
    from consent.services import donor_create

    user = user_with_role(Role.DONOR)
    donor_create(user_id=user.pk)
    return user
