"""Celery tasks of the games app (autodiscovered by name: ``<app>.tasks``)."""

from games.contour.tasks import race_score_task, race_sweep  # noqa: F401
