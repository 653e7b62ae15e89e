"""Fixtures for the consent and intake tests: roles, a published form, real data files, and
Celery forced eager (the CI's second run has a real worker that cannot see test rows)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from accounts.roles import Role
from consent.models import Purpose
from tests.factories import ConsentFactory, ConsentFormFactory, DatasetFactory, user_with_role

ALL_PURPOSES = [Purpose.ANNOTATION, Purpose.RESEARCH_EXPORT, Purpose.COMMERCIAL, Purpose.RECONTACT]


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The revocation-code throttle counts in the cache; each test starts from zero.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def no_ocr(settings):
    # OCR is tested in tests/consent/deid; here it would only add seconds per image.
    settings.INTAKE_OCR_ENABLED = False


@pytest.fixture
def coordinator(db):
    return user_with_role(Role.COORDINATOR)


@pytest.fixture
def admin_user(db):
    return user_with_role(Role.ADMIN)


@pytest.fixture
def published_form(db):
    return ConsentFormFactory(slug="donation", purposes=ALL_PURPOSES)


@pytest.fixture
def donor_consent(donor_user, published_form):
    """An active online consent of `donor_user` permitting games and research export."""
    return ConsentFactory(
        donor=donor_user.donor,
        form=published_form,
        decisions={
            Purpose.ANNOTATION: "permit",
            Purpose.RESEARCH_EXPORT: "permit",
            Purpose.COMMERCIAL: "deny",
            Purpose.RECONTACT: "deny",
        },
        recorded_by_id=donor_user.pk,
    )


@pytest.fixture
def dataset(db):
    return DatasetFactory(slug="brain-mr", name="Brain MR")


def data_dir() -> Path:
    root = Path(settings.DATA_DIR) / "images"
    # Fail, never skip: these tests prove intake on real files.
    assert root.is_dir(), f"shared data missing at {root}; set TESSERA_DATA_DIR"
    return root


@pytest.fixture
def mr_files() -> list[Path]:
    files = sorted((data_dir() / "dicom_mr_brain_toshiba" / "7006_DTI_ortho_b0").glob("*.dcm"))
    assert len(files) == 40
    return files


@pytest.fixture
def xray_files() -> list[Path]:
    files = sorted((data_dir() / "chest_xray_kermany_subset" / "images").glob("*.jpg"))[:3]
    assert len(files) == 3
    return files
