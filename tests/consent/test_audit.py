from __future__ import annotations

import pytest

from consent.models import AuditEvent
from consent.services import audit_event_record

pytestmark = pytest.mark.django_db


def test_audit_event_records_the_target_by_id(volunteer):
    event = audit_event_record(
        actor_id=volunteer.pk, action="test.done", target=volunteer, details={"n": 1}
    )

    assert (event.actor_id, event.action, event.target_type, event.target_id, event.details) == (
        volunteer.pk,
        "test.done",
        "accounts.user",
        str(volunteer.pk),
        {"n": 1},
    )


def test_audit_events_cannot_be_changed_or_deleted(volunteer):
    event = audit_event_record(actor_id=None, action="test.done", target=volunteer)

    event.action = "test.rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()

    assert AuditEvent.objects.get(pk=event.pk).action == "test.done"
