"""Django's ASGI handler with each HTTP request's middleware and view run in one thread.

Django's own ``ASGIHandler`` builds an async middleware chain. Every middleware written the
classic way (``MiddlewareMixin``: sessions, CSRF, authentication, messages, WhiteNoise...) then
runs its ``process_request`` and ``process_response`` through ``sync_to_async``, and the sync
view through one more: a dozen hops between the event loop and a thread per request, a fifth of
a match-three moves request's server time (docs/benchmarks.md, 2026-12-07). None of the
project's HTTP views or middleware is async, so this handler builds the chain sync and runs it,
view included, with one ``sync_to_async`` in the request's own thread (Django gives each
request a thread-sensitive context of its own). Reading the body, the response and the
disconnect handling stay Django's. Websockets do not pass through here.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse, HttpRequest, HttpResponseBase


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response
