"""Consent forms are immutable once published; donors sign online; coordinators record paper."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.hashers import identify_hasher
from django.urls import reverse
from django.utils import timezone

from consent.models import AuditEvent, Consent, ConsentForm, Donor
from consent.services.consents import (
    consent_form_create,
    consent_form_new_version,
    consent_form_publish,
    consent_form_update,
    consent_give,
    consent_record_paper,
    revocation_code_matches,
)
from tessera.errors import ApplicationError, Conflict, NotPermitted
from tests.consent.conftest import ALL_PURPOSES
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ALL_PERMIT = dict.fromkeys(ALL_PURPOSES, "permit")


def _draft() -> ConsentForm:
    return consent_form_create(
        slug="study", title="Study", text="v1 text", purposes=["annotation"], actor_id=None
    )


def test_published_form_cannot_change_and_a_new_version_leaves_consents_alone(donor_user):
    form = _draft()
    consent_form_update(form=form, actor_id=None, text="v1 text, corrected")
    form = consent_form_publish(form=form, actor_id=None)
    given = consent_give(
        donor=donor_user.donor, form=form, decisions={"annotation": "permit"}, actor_id=1
    )

    with pytest.raises(Conflict, match="cannot change"):
        consent_form_update(form=form, actor_id=None, text="sneaky edit")
    v2 = consent_form_new_version(form=form, actor_id=None)
    v2 = consent_form_update(
        form=v2, actor_id=None, text="v2 text", purposes=["annotation", "recontact"]
    )
    v2 = consent_form_publish(form=v2, actor_id=None)

    form.refresh_from_db()
    given.consent.refresh_from_db()
    assert (form.version, form.text) == (1, "v1 text, corrected")
    assert (v2.version, v2.text) == (2, "v2 text")
    assert (given.consent.form_id, given.consent.decisions) == (form.pk, {"annotation": "permit"})
    assert given.consent.status == "active"


def test_admin_shows_a_published_form_read_only(client):
    form = _draft()
    consent_form_publish(form=form, actor_id=None)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:consent_consentform_change", args=[form.pk])

    response = client.post(
        url,
        {"slug": "study", "language": "en", "title": "Changed", "text": "x", "purposes": "[]"},
    )

    form.refresh_from_db()
    assert response.status_code == 302
    assert (form.title, form.text) == ("Study", "v1 text")
    page = client.get(url)
    assert page.status_code == 200
    assert list(page.context["adminform"].form.fields) == []
    assert set(page.context["adminform"].readonly_fields) == {
        "slug",
        "language",
        "title",
        "text",
        "purposes",
        "version",
        "published_at",
    }


def test_signing_online_shows_the_revocation_code_once_and_stores_only_a_hash(
    client, donor_user, published_form
):
    client.force_login(donor_user)
    url = reverse("consent:sign", args=[published_form.pk])
    assert client.get(url).status_code == 200

    incomplete = client.post(url, {"purpose_annotation": "permit"})
    assert incomplete.status_code == 400
    assert Consent.objects.count() == 0

    response = client.post(
        url,
        {
            "purpose_annotation": "permit",
            "purpose_research_export": "permit",
            "purpose_commercial": "deny",
            "purpose_recontact": "deny",
        },
    )

    assert response.status_code == 200
    code = response.context["revocation_code"]
    consent = Consent.objects.get()
    donor = Donor.objects.get(user=donor_user)
    assert consent.decisions == {
        "annotation": "permit",
        "research_export": "permit",
        "commercial": "deny",
        "recontact": "deny",
    }
    assert (consent.method, consent.recorded_by_id, consent.status) == (
        "online",
        donor_user.pk,
        "active",
    )
    assert code in response.content.decode()
    assert code not in donor.revocation_code_hash
    assert identify_hasher(donor.revocation_code_hash) is not None
    assert revocation_code_matches(donor=donor, code=code)
    # Shown once: the overview never shows it again, a second consent issues none.
    assert code not in client.get(reverse("consent:overview")).content.decode()
    second = consent_form_new_version(form=published_form, actor_id=None)
    second = consent_form_publish(form=second, actor_id=None)
    again = consent_give(donor=donor, form=second, decisions=ALL_PERMIT, actor_id=donor_user.pk)
    assert again.revocation_code is None


def test_decisions_must_cover_exactly_the_forms_purposes(donor_user, published_form):
    with pytest.raises(ApplicationError, match="every purpose"):
        consent_give(
            donor=donor_user.donor,
            form=published_form,
            decisions={"annotation": "permit", "research_export": "maybe"},
            actor_id=donor_user.pk,
        )
    assert Consent.objects.count() == 0


def test_the_same_form_cannot_be_signed_twice_while_active(donor_user, published_form):
    consent_give(
        donor=donor_user.donor, form=published_form, decisions=ALL_PERMIT, actor_id=donor_user.pk
    )
    with pytest.raises(Conflict, match="already has an active consent"):
        consent_give(
            donor=donor_user.donor,
            form=published_form,
            decisions=ALL_PERMIT,
            actor_id=donor_user.pk,
        )
    assert Consent.objects.count() == 1


def test_paper_consent_for_a_new_donor_and_then_for_the_known_donor(coordinator, published_form):
    signed = timezone.now() - dt.timedelta(days=2)
    first = consent_record_paper(
        form=published_form, decisions=ALL_PERMIT, given_at=signed, actor_id=coordinator.pk
    )
    donor = first.consent.donor
    assert (first.consent.method, first.consent.recorded_by_id) == ("paper", coordinator.pk)
    assert first.consent.given_at == signed and donor.user_id is None
    assert first.revocation_code is not None

    v2 = consent_form_new_version(form=published_form, actor_id=None)
    v2 = consent_form_publish(form=v2, actor_id=None)
    with pytest.raises(NotPermitted, match="do not match"):
        consent_record_paper(
            form=v2,
            decisions=ALL_PERMIT,
            given_at=timezone.now(),
            actor_id=coordinator.pk,
            donor_pseudonym=donor.pseudonym,
            revocation_code="WRONG",
        )
    second = consent_record_paper(
        form=v2,
        decisions=ALL_PERMIT,
        given_at=timezone.now(),
        actor_id=coordinator.pk,
        donor_pseudonym=donor.pseudonym,
        revocation_code=first.revocation_code,
    )

    assert second.consent.donor_id == donor.pk and second.revocation_code is None
    assert Donor.objects.count() == 1


def test_paper_consent_page_prints_the_code_for_the_donors_copy(
    client, coordinator, published_form
):
    client.force_login(coordinator)
    response = client.post(
        reverse("consent:paper", args=[published_form.pk]),
        {
            "given_on": timezone.localdate().isoformat(),
            "purpose_annotation": "permit",
            "purpose_research_export": "deny",
            "purpose_commercial": "deny",
            "purpose_recontact": "deny",
        },
    )

    assert response.status_code == 200
    consent = Consent.objects.get()
    assert response.context["revocation_code"] in response.content.decode()
    assert consent.donor.pseudonym in response.content.decode()
    assert consent.decisions["research_export"] == "deny"
    overview = client.get(reverse("consent:overview")).content.decode()
    assert consent.donor.pseudonym in overview


def test_consent_api_give_and_list(api_client, donor_user, published_form):
    api_client.force_authenticate(donor_user)

    created = api_client.post(
        "/api/v1/consent/consents/give/",
        {"form": published_form.pk, "decisions": ALL_PERMIT},
        format="json",
    )
    listing = api_client.get("/api/v1/consent/consents/")

    assert created.status_code == 201
    assert len(created.json()["revocation_code"]) == 19
    assert [c["status"] for c in listing.json()] == ["active"]
    assert listing.json()[0]["decisions"] == ALL_PERMIT
    assert AuditEvent.objects.filter(action="consent.given").count() == 1
    forms = api_client.get("/api/v1/consent/forms/").json()
    assert [f["slug"] for f in forms] == ["donation"]


def test_admin_consent_list_is_paged_and_searchable_by_donor_id(client):
    from accounts.roles import Role
    from tests.factories import ConsentFactory, ConsentFormFactory, user_with_role

    form = ConsentFormFactory()
    consents = [ConsentFactory(form=form) for _ in range(30)]
    client.force_login(user_with_role(Role.ADMIN))

    first = client.get(reverse("consent:overview")).content.decode()
    second = client.get(reverse("consent:overview"), {"page": 2}).content.decode()
    shown = [c.donor.pseudonym for c in consents if c.donor.pseudonym in first]
    assert len(shown) == 25
    assert "Page 1 of 2 (30 consents)" in first
    assert sum(c.donor.pseudonym in second for c in consents) == 5

    target = consents[7].donor.pseudonym
    found = client.get(reverse("consent:overview"), {"q": target.lower()}).content.decode()
    assert [c.donor.pseudonym for c in consents if c.donor.pseudonym in found] == [target]
