"""Platform-level tasks."""

from __future__ import annotations

import os
import socket

from celery import shared_task
from django.db import connection


@shared_task(ignore_result=False)
def ping() -> dict[str, object]:
    """Prove that a task really ran where it was sent: the executing process and its database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"pid": os.getpid(), "host": socket.gethostname(), "db_vendor": connection.vendor}


@shared_task
def media_sweep_task() -> dict[str, object]:
    """Delete stored files that no row names (see tessera.media)."""
    from dataclasses import asdict

    from tessera.media import media_sweep

    return asdict(media_sweep())
