"""One ASGI application for HTTP and websockets."""

from __future__ import annotations

import logging
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tessera.settings")
# Django must be set up before anything imports models (consumers, middleware).
django.setup(set_prefix=False)

from tessera.handlers import SyncChainASGIHandler  # noqa: E402

# What django.core.asgi.get_asgi_application() returns, with a sync middleware chain.
django_asgi_app = SyncChainASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from tessera.checks import in_memory_layer_without_debug  # noqa: E402
from tessera.routing import websocket_urlpatterns  # noqa: E402

logger = logging.getLogger(__name__)
if in_memory_layer_without_debug():
    logger.warning(
        "In-memory channel layer with DEBUG off: websocket messages reach only this process. "
        "Set REDIS_URL for production."
    )

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
