"""Celery entry points of the contour race: thin, idempotent, fetch by id and call a service."""

from __future__ import annotations

from celery import shared_task

from games.contour import services


@shared_task(acks_late=True)
def race_score_task(room_id: int, round_no: int) -> bool:
    """Score a finished round (Dice, STAPLE) outside any player's move; True when it scored now."""
    return services.race_round_score(room_id=room_id, round_no=round_no)


@shared_task
def race_sweep() -> dict[str, int]:
    """Scheduled: tick rooms whose timers nobody is left to fire, close stale rooms, match the
    lobby (abandoned rooms never stall)."""
    return services.race_sweep()
