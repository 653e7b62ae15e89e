"""Websocket routes of every app, collected in one list for the ASGI router."""

from django.urls import path

from accounts.consumers import NotificationConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
]
