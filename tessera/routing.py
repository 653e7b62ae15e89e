"""Websocket routes of every app, collected in one list for the ASGI router."""

from django.urls import path

from accounts.consumers import NotificationConsumer
from games.contour.consumers import RaceLobbyConsumer, RaceRoomConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/race/lobby/", RaceLobbyConsumer.as_asgi()),
    path("ws/race/room/<uuid:token>/", RaceRoomConsumer.as_asgi()),
]
