"""Writes for consent and the audit trail.

This package keeps the audit and donor writes every app uses here; the rest is split by
sub-domain: `consents` (forms, giving, revocation codes), `withdrawal`, `intake`, `review`.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from django.db import models

from consent.models import AuditEvent, Donor

logger = logging.getLogger(__name__)

_PSEUDONYM_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"


def audit_event_record(
    *,
    actor_id: int | None,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. `details` must hold ids and facts, never personal data."""
    if target is not None:
        target_type = target._meta.label_lower
        target_id = target.pk
    event = AuditEvent.objects.create(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
    )
    logger.debug("audit %s %s:%s by %s", action, target_type, target_id, actor_id)
    return event


def _new_pseudonym() -> str:
    return "D-" + "".join(secrets.choice(_PSEUDONYM_ALPHABET) for _ in range(10))


def donor_create(*, user_id: int | None = None, actor_id: int | None = None) -> Donor:
    """Create a pseudonymous donor, optionally linked to the donor's own account."""
    while True:
        pseudonym = _new_pseudonym()
        if not Donor.objects.filter(pseudonym=pseudonym).exists():
            break
    donor = Donor.objects.create(pseudonym=pseudonym, user_id=user_id)
    audit_event_record(actor_id=actor_id, action="donor.created", target=donor)
    return donor
