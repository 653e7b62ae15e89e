from django.urls import path

from games.contour import views

# Included by games/urls.py under "race/" (names live in the "games" namespace).
urlpatterns = [
    path("", views.race_lobby, name="race-lobby"),
    path("room/<uuid:token>/", views.race_room, name="race-room"),
]
