"""The media sweep deletes stored files no row names, and only those (old enough)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from annotate.models import Image
from consent.models import AuditEvent
from consent.services.withdrawal import consent_withdraw
from tessera.media import media_referenced_names, media_sweep
from tessera.tasks import media_sweep_task
from tests.factories import ImageFactory

pytestmark = pytest.mark.django_db
HOUR = 3600


def _age(name: str, seconds: float) -> None:
    path = Path(settings.MEDIA_ROOT) / name
    then = time.time() - seconds
    os.utime(path, (then, then))


def _orphan(name: str, age_s: float) -> str:
    stored = default_storage.save(name, ContentFile(b"pixels"))
    _age(stored, age_s)
    return stored


def test_sweep_deletes_old_orphans_and_keeps_named_and_young_files():
    image = ImageFactory()
    _age(image.file.name, 48 * HOUR)
    old = _orphan("images/999/old-orphan.png", 48 * HOUR)
    young = _orphan("exports/in-progress.zip", 60)

    assert {image.file.name, image.thumbnail.name} <= media_referenced_names()
    result = media_sweep(grace=timedelta(hours=24))

    assert not default_storage.exists(old)
    assert default_storage.exists(young)
    assert default_storage.exists(image.file.name)
    assert default_storage.exists(image.thumbnail.name)
    assert (result.scanned, result.orphaned, result.deleted, result.failed) == (4, 1, 1, 0)
    assert result.bytes_freed == len(b"pixels")
    event = AuditEvent.objects.get(action="media.sweep")
    assert event.details["deleted"] == 1


def test_dry_run_deletes_nothing():
    old = _orphan("thumbs/1/left-over.png", 48 * HOUR)
    result = media_sweep(grace=timedelta(hours=24), dry_run=True)
    assert (result.orphaned, result.deleted) == (1, 0)
    assert default_storage.exists(old)
    assert not AuditEvent.objects.filter(action="media.sweep").exists()


def test_files_whose_delete_failed_at_withdrawal_are_swept(
    monkeypatch, django_capture_on_commit_callbacks
):
    image = ImageFactory()
    names = [image.file.name, image.thumbnail.name]

    def fail(name):
        raise PermissionError(name)

    with monkeypatch.context() as patch:
        patch.setattr(default_storage, "delete", fail)
        with django_capture_on_commit_callbacks(execute=True):
            consent_withdraw(consent_id=image.consent_id, actor_id=None, channel="admin")
    image.refresh_from_db()
    assert image.status == Image.Status.WITHDRAWN
    assert all(default_storage.exists(name) for name in names)  # the delete failed

    result = media_sweep(grace=timedelta(0))

    assert result.deleted == 2
    assert not any(default_storage.exists(name) for name in names)


def test_task_and_command_run_the_same_sweep(capsys):
    first = _orphan("masks/1/a.png", 48 * HOUR)
    assert media_sweep_task()["deleted"] == 1
    assert not default_storage.exists(first)

    second = _orphan("masks/1/b.png", 48 * HOUR)
    call_command("media_sweep", "--dry-run")
    assert "1 orphaned, would delete 1" in capsys.readouterr().out
    assert default_storage.exists(second)
    call_command("media_sweep", "--grace-hours", "1")
    assert not default_storage.exists(second)
