from django.urls import include, path

from games import views

app_name = "games"

urlpatterns = [
    path("", views.index, name="index"),
    path("leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("badges/", views.badges_page, name="badges"),
    path("race/", include("games.contour.urls")),
    path("<slug:slug>/", views.levels, name="levels"),
    path("<slug:slug>/<slug:level_id>/", views.board, name="board"),
]
