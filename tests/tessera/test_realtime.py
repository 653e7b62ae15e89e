"""The notification socket, through the ASGI application exactly as served."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import SESSION_KEY
from django.db import transaction

from tessera.asgi import application
from tessera.realtime import broadcast_on_commit, user_group

pytestmark = pytest.mark.django_db(transaction=True)


async def _connect(client=None, origin=b"http://127.0.0.1"):
    headers = [(b"origin", origin)]
    if client is not None:
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    # Generous timeouts: a loaded CI machine is slow, and these are not timing assertions.
    connected, code = await communicator.connect(timeout=20)
    return communicator, connected, code


@pytest.fixture
def logged_in_client(client, volunteer):
    client.force_login(volunteer)
    assert client.session[SESSION_KEY] == str(volunteer.pk)
    return client


async def test_anonymous_socket_is_refused():
    communicator, connected, code = await _connect()
    await communicator.disconnect()

    assert connected is False
    assert code == 4401


async def test_foreign_origin_is_refused(logged_in_client):
    communicator, connected, _ = await _connect(logged_in_client, origin=b"http://evil.example")
    await communicator.disconnect()

    assert connected is False


async def test_broadcast_reaches_the_user_only_after_commit(logged_in_client, volunteer):
    communicator, connected, _ = await _connect(logged_in_client)
    assert connected

    def send_and_roll_back():
        with transaction.atomic():
            broadcast_on_commit(user_group(volunteer.pk), "notify", {"text": "never"})
            transaction.set_rollback(True)

    def send_and_commit():
        with transaction.atomic():
            broadcast_on_commit(user_group(volunteer.pk), "notify", {"text": "+40 points"})

    await sync_to_async(send_and_roll_back)()
    assert await communicator.receive_nothing(timeout=0.2)
    await sync_to_async(send_and_commit)()

    assert await communicator.receive_json_from(timeout=20) == {"text": "+40 points"}
    await communicator.disconnect()


async def test_client_messages_are_answered_not_acted_on(logged_in_client):
    communicator, connected, _ = await _connect(logged_in_client)
    assert connected

    await communicator.send_json_to({"type": "anything"})

    assert (await communicator.receive_json_from(timeout=20))["type"] == "error"
    await communicator.disconnect()
