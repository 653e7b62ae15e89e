"""System checks for deployment mistakes that Django's own checks do not know about."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning as CheckWarning
from django.core.checks import register

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"


def in_memory_layer_without_debug() -> bool:
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return backend == IN_MEMORY_LAYER and not settings.DEBUG


@register(deploy=False)
def check_channel_layer(app_configs, **kwargs):  # type: ignore[no-untyped-def]
    if in_memory_layer_without_debug():
        return [
            CheckWarning(
                "The in-memory channel layer is in use with DEBUG off.",
                hint="It only reaches consumers in this one process: set REDIS_URL in production.",
                id="tessera.W001",
            )
        ]
    return []
