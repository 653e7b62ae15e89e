"""The Celery application. Tasks are queued after commit (`delay_on_commit`) and run eagerly in
the embedded mode, on separate worker processes in production."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tessera.settings")

app = Celery("tessera", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
