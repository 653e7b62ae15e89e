"""tessera.handlers: HTTP requests run their middleware and view in one thread."""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from channels.testing import HttpCommunicator
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpResponse
from django.urls import path

from tessera.handlers import SyncChainASGIHandler

CALLS: list[tuple[str, int]] = []


class Probe:
    """A middleware that can run either way and notes which way it ran, and where."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        CALLS.append(("middleware, sync", threading.get_ident()))
        return self.get_response(request)

    async def _acall(self, request):
        CALLS.append(("middleware, async", threading.get_ident()))
        return await self.get_response(request)


def probe_view(request):
    CALLS.append(("view", threading.get_ident()))
    response = HttpResponse("ok")
    response["X-Probe"] = request.method
    return response


urlpatterns = [path("probe/", probe_view)]


@pytest.fixture
def probed(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.tessera.test_handlers.Probe"]
    settings.ROOT_URLCONF = "tests.tessera.test_handlers"
    CALLS.clear()
    return CALLS


async def _get(app) -> dict:
    communicator = HttpCommunicator(app, "GET", "/probe/", headers=[(b"host", b"testserver")])
    return await communicator.get_response(timeout=10)


@pytest.mark.asyncio
async def test_the_middleware_chain_and_the_view_run_sync_in_one_thread(probed):
    response = await _get(SyncChainASGIHandler())

    assert response["status"] == 200
    assert response["body"] == b"ok"
    assert (b"X-Probe", b"GET") in response["headers"]
    assert (b"X-Frame-Options", b"DENY") in response["headers"]  # the project's middleware ran
    (middleware, where), (view, view_thread) = probed
    assert (middleware, view) == ("middleware, sync", "view")
    assert where == view_thread != threading.get_ident()  # off the event loop's thread


@pytest.mark.asyncio
async def test_djangos_own_handler_would_hop_between_loop_and_thread(probed):
    """What the handler replaces: Django's chain runs async middleware on the event loop and the
    view in a thread (every classic middleware hops too)."""
    response = await _get(ASGIHandler())

    assert response["status"] == 200
    (middleware, where), (_, view_thread) = probed
    assert middleware == "middleware, async"
    assert where == threading.get_ident() != view_thread


def test_the_project_serves_http_through_it():
    from tessera.asgi import application, django_asgi_app

    assert isinstance(django_asgi_app, SyncChainASGIHandler)
    assert application.application_mapping["http"] is django_asgi_app
