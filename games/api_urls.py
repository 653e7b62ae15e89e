from django.urls import path

from games import apis

urlpatterns = [
    path("match3/sessions/", apis.Match3SessionStartApi.as_view(), name="api-match3-start"),
    path(
        "match3/sessions/<uuid:token>/",
        apis.Match3SessionDetailApi.as_view(),
        name="api-match3-session",
    ),
    path(
        "match3/sessions/<uuid:token>/moves/",
        apis.Match3MovesApi.as_view(),
        name="api-match3-moves",
    ),
]
