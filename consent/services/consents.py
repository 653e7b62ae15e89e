"""Consent forms (versioned, immutable once published), giving consent, revocation codes."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from consent.models import Consent, ConsentForm, Donor, Purpose
from consent.services import audit_event_record, donor_create
from tessera.errors import ApplicationError, Conflict, NotPermitted

logger = logging.getLogger(__name__)

_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
#: 4 groups of 4 characters from 30 symbols: about 78 bits, typed from a sheet of paper.
REVOCATION_CODE_GROUPS = 4
DECISIONS = ("permit", "deny")
_EDITABLE_FIELDS = ("title", "text", "purposes", "language", "slug")


@dataclass(frozen=True)
class GivenConsent:
    """A new consent and, when one was issued now, the donor's revocation code (shown once)."""

    consent: Consent
    revocation_code: str | None


def normalise_revocation_code(raw: str) -> str:
    """Upper case, without spaces or dashes, so 'abcd-efgh' and 'ABCD EFGH' are the same code."""
    return "".join(ch for ch in raw.upper() if ch.isalnum())


def _format_code(compact: str) -> str:
    return "-".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def revocation_code_issue(*, donor: Donor, actor_id: int | None) -> str:
    """Give `donor` a new revocation code; only its hash is stored. Returns the code to show once."""
    compact = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(4 * REVOCATION_CODE_GROUPS))
    donor.revocation_code_hash = make_password(compact)
    donor.save(update_fields=["revocation_code_hash", "updated_at"])
    audit_event_record(actor_id=actor_id, action="donor.revocation_code_issued", target=donor)
    return _format_code(compact)


def revocation_code_matches(*, donor: Donor, code: str) -> bool:
    """True when `code` is the donor's revocation code (constant-time hash comparison)."""
    if not donor.revocation_code_hash:
        return False
    return check_password(normalise_revocation_code(code), donor.revocation_code_hash)


def _validate_purposes(purposes: list[str]) -> list[str]:
    unknown = [p for p in purposes if p not in Purpose.values]
    if unknown or not purposes or len(set(purposes)) != len(purposes):
        raise ApplicationError(
            "A consent form asks about one or more distinct known purposes.",
            extra={"field": "purposes"},
        )
    return list(purposes)


@transaction.atomic
def consent_form_create(
    *,
    slug: str,
    title: str,
    text: str,
    purposes: list[str],
    language: str = "en",
    actor_id: int | None = None,
) -> ConsentForm:
    """A new unpublished version of form `slug` in `language` (the next version number)."""
    latest = ConsentForm.objects.filter(slug=slug, language=language).aggregate(v=Max("version"))
    form = ConsentForm.objects.create(
        slug=slug,
        language=language,
        version=(latest["v"] or 0) + 1,
        title=title,
        text=text,
        purposes=_validate_purposes(purposes),
    )
    audit_event_record(
        actor_id=actor_id,
        action="consent_form.created",
        target=form,
        details={"slug": slug, "version": form.version},
    )
    return form


@transaction.atomic
def consent_form_update(*, form: ConsentForm, actor_id: int | None, **fields: Any) -> ConsentForm:
    """Edit a draft. A published form is immutable: publish a new version instead."""
    form = ConsentForm.objects.select_for_update().get(pk=form.pk)
    if form.is_published:
        raise Conflict("A published consent form cannot change; create a new version instead.")
    unknown = set(fields) - set(_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.")
    if "purposes" in fields:
        fields["purposes"] = _validate_purposes(fields["purposes"])
    for name, value in fields.items():
        setattr(form, name, value)
    form.save(update_fields=[*fields, "updated_at"])
    audit_event_record(
        actor_id=actor_id,
        action="consent_form.edited",
        target=form,
        details={"fields": sorted(fields)},
    )
    return form


@transaction.atomic
def consent_form_publish(*, form: ConsentForm, actor_id: int | None) -> ConsentForm:
    """Publish a draft; from now on donors can sign it and nobody can change it."""
    form = ConsentForm.objects.select_for_update().get(pk=form.pk)
    if form.is_published:
        raise Conflict("This consent form is already published.")
    _validate_purposes(form.purposes)
    form.published_at = timezone.now()
    form.save(update_fields=["published_at", "updated_at"])
    audit_event_record(
        actor_id=actor_id,
        action="consent_form.published",
        target=form,
        details={"slug": form.slug, "version": form.version},
    )
    return form


@transaction.atomic
def consent_form_new_version(*, form: ConsentForm, actor_id: int | None) -> ConsentForm:
    """A draft copy of `form` with the next version number; existing consents keep theirs."""
    return consent_form_create(
        slug=form.slug,
        title=form.title,
        text=form.text,
        purposes=list(form.purposes),
        language=form.language,
        actor_id=actor_id,
    )


def _validate_decisions(form: ConsentForm, decisions: dict[str, str]) -> dict[str, str]:
    if not form.is_published:
        raise Conflict("This consent form is not published.")
    if set(decisions) != set(form.purposes) or any(v not in DECISIONS for v in decisions.values()):
        raise ApplicationError(
            "Choose 'permit' or 'deny' for every purpose of the form.",
            extra={"field": "decisions", "purposes": list(form.purposes)},
        )
    return {p: decisions[p] for p in form.purposes}


def _create_consent(
    *,
    donor: Donor,
    form: ConsentForm,
    decisions: dict[str, str],
    method: str,
    given_at: datetime,
    actor_id: int | None,
) -> Consent:
    if donor.consents.filter(form=form, status=Consent.Status.ACTIVE).exists():
        raise Conflict("This donor already has an active consent on this form version.")
    try:
        with transaction.atomic():
            consent = Consent.objects.create(
                donor=donor,
                form=form,
                decisions=decisions,
                status=Consent.Status.ACTIVE,
                period_start=given_at,
                given_at=given_at,
                method=method,
                recorded_by_id=actor_id,
            )
    except IntegrityError as exc:  # a concurrent retry of the same signature
        raise Conflict("This donor already has an active consent on this form version.") from exc
    audit_event_record(
        actor_id=actor_id,
        action="consent.given",
        target=consent,
        details={
            "form": form.slug,
            "version": form.version,
            "language": form.language,
            "decisions": decisions,
            "method": method,
        },
    )
    return consent


@transaction.atomic
def consent_give(
    *, donor: Donor, form: ConsentForm, decisions: dict[str, str], actor_id: int
) -> GivenConsent:
    """The donor signs `form` online, with a permit/deny decision per purpose.

    A donor without a revocation code gets one now; it is returned once and never stored.
    """
    donor = Donor.objects.select_for_update().get(pk=donor.pk)
    consent = _create_consent(
        donor=donor,
        form=form,
        decisions=_validate_decisions(form, decisions),
        method=Consent.Method.ONLINE,
        given_at=timezone.now(),
        actor_id=actor_id,
    )
    code = None
    if not donor.revocation_code_hash:
        code = revocation_code_issue(donor=donor, actor_id=actor_id)
    return GivenConsent(consent=consent, revocation_code=code)


@transaction.atomic
def consent_record_paper(
    *,
    form: ConsentForm,
    decisions: dict[str, str],
    given_at: datetime,
    actor_id: int,
    donor_pseudonym: str = "",
    revocation_code: str = "",
) -> GivenConsent:
    """A site coordinator records a signed paper consent.

    For a new donor (no pseudonym given) a pseudonymous donor and a revocation code are created;
    the code is returned once, to be written on the donor's copy. For a known donor the
    coordinator must enter the donor's ID and revocation code, which proves the donor is there.
    """
    if given_at > timezone.now():
        raise ApplicationError("The signature date cannot be in the future.")
    decisions = _validate_decisions(form, decisions)
    code = None
    if donor_pseudonym:
        donor = Donor.objects.select_for_update().filter(pseudonym=donor_pseudonym.strip()).first()
        if donor is None or not revocation_code_matches(donor=donor, code=revocation_code):
            raise NotPermitted("The donor ID and revocation code do not match.")
    else:
        donor = donor_create(actor_id=actor_id)
        code = revocation_code_issue(donor=donor, actor_id=actor_id)
    consent = _create_consent(
        donor=donor,
        form=form,
        decisions=decisions,
        method=Consent.Method.PAPER,
        given_at=given_at,
        actor_id=actor_id,
    )
    return GivenConsent(consent=consent, revocation_code=code)


def consents_expire_due(*, now: datetime | None = None) -> int:
    """Mark active consents whose period has ended as expired (for a scheduled task)."""
    now = now or timezone.now()
    due = list(
        Consent.objects.filter(status=Consent.Status.ACTIVE, period_end__lte=now).values_list(
            "pk", flat=True
        )
    )
    for pk in due:
        updated = Consent.objects.filter(pk=pk, status=Consent.Status.ACTIVE).update(
            status=Consent.Status.EXPIRED, updated_at=now
        )
        if updated:
            audit_event_record(
                actor_id=None, action="consent.expired", target_type="consent.consent", target_id=pk
            )
    return len(due)
