from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.access import access_has_role
from accounts.roles import Role
from annotate.selectors import dataset_cards_for_player

PLAYER_ROLES = (Role.VOLUNTEER, Role.CLINICIAN, Role.ADMIN)


@login_required
def index(request):
    if not access_has_role(request.user, *PLAYER_ROLES):
        return render(
            request,
            "403.html",
            {"message": "Games are for volunteers. Sign up as a volunteer to play."},
            status=403,
        )
    cards = dataset_cards_for_player(user=request.user)
    return render(request, "games/index.html", {"cards": cards})
