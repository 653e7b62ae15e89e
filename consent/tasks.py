"""Celery tasks of consent and intake: fetch by id, call a service."""

from __future__ import annotations

from celery import shared_task

from consent.services.intake import intake_item_process
from consent.services.withdrawal import withdrawal_followup


@shared_task(acks_late=True)
def intake_item_process_task(item_id: int) -> None:
    """De-identify and store one uploaded file (idempotent: a redelivery finds it done)."""
    intake_item_process(item_id=item_id)


@shared_task
def withdrawal_followup_task(consent_id: int, image_ids: list[int]) -> dict[str, int]:
    """After a withdrawal commits: recompute consensus and mark exports (see the service)."""
    return withdrawal_followup(consent_id=consent_id, image_ids=image_ids)


@shared_task
def consents_expire_task() -> int:
    """Scheduled: consents past their period end become expired (their images leave play)."""
    from consent.services.consents import consents_expire_due

    return consents_expire_due()
