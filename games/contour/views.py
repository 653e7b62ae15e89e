"""Contour-race pages: the lobby and a room. Everything live happens over the race sockets."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import render

from accounts.access import access_has_role
from annotate.models import Image
from games.contour import selectors
from games.views import PLAYER_ROLES, _forbidden
from tessera.errors import NotPermitted


@login_required
def race_lobby(request):
    if not access_has_role(request.user, *PLAYER_ROLES):
        return _forbidden(request)
    datasets = selectors.race_datasets().annotate(
        n_active=Count("images", filter=Q(images__status=Image.Status.ACTIVE))
    )
    return render(
        request,
        "games/race/lobby.html",
        {
            "datasets": datasets,
            "chosen": request.GET.get("dataset", ""),
            "stats": selectors.race_stats(player_id=request.user.pk),
            "open_room": selectors.open_room_of(player_id=request.user.pk),
        },
    )


@login_required
def race_room(request, token: UUID):
    if not access_has_role(request.user, *PLAYER_ROLES):
        return _forbidden(request)
    try:
        room = selectors.room_for_player(token=token, player_id=request.user.pk)
    except NotPermitted:
        raise Http404("No such room.") from None
    return render(request, "games/race/room.html", {"room": room, "dataset": room.dataset})
