from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from accounts.access import access_has_role
from accounts.roles import Role
from annotate.selectors import dataset_cards_for_player
from games.engine import progression
from games.levels import reference_images
from games.selectors import (
    PERIODS,
    badge_cards,
    dataset_for_play,
    leaderboard,
    level_cards,
    player_dataset_metrics,
    player_stats,
)
from tessera.errors import NotPermitted

PLAYER_ROLES = (Role.VOLUNTEER, Role.CLINICIAN, Role.ADMIN)
DICOM_MODALITIES = {"CT", "MR", "CR", "DX"}


def _forbidden(request):
    return render(
        request,
        "403.html",
        {"message": "Games are for volunteers. Sign up as a volunteer to play."},
        status=403,
    )


@login_required
def index(request):
    if not access_has_role(request.user, *PLAYER_ROLES):
        return _forbidden(request)
    cards = dataset_cards_for_player(user=request.user)
    stats = player_stats(player_id=request.user.pk)
    return render(request, "games/index.html", {"cards": cards, "stats": stats})


def _dataset_or_404(slug: str):
    try:
        return dataset_for_play(slug=slug)
    except NotPermitted:
        raise Http404("No such game.") from None


@login_required
def levels(request, slug: str):
    if not access_has_role(request.user, *PLAYER_ROLES):
        return _forbidden(request)
    dataset = _dataset_or_404(slug)
    metrics = player_dataset_metrics(player_id=request.user.pk, dataset=dataset)
    refs = reference_images(dataset=dataset)
    return render(
        request,
        "games/levels.html",
        {
            "dataset": dataset,
            "levels": level_cards(player_id=request.user.pk, dataset=dataset),
            "references": list(zip(dataset.classes.all(), refs, strict=False)),
            "accuracy": progression.accuracy_estimate(metrics),
            "metrics": metrics,
        },
    )


@login_required
def board(request, slug: str, level_id: str):
    if not access_has_role(request.user, *PLAYER_ROLES):
        return _forbidden(request)
    dataset = _dataset_or_404(slug)
    cards = {c.level.level_id: c for c in level_cards(player_id=request.user.pk, dataset=dataset)}
    card = cards.get(level_id)
    if card is None:
        raise Http404("No such level.")
    return render(
        request,
        "games/board.html",
        {
            "dataset": dataset,
            "card": card,
            "windowing": dataset.modality.upper() in DICOM_MODALITIES,
            "classes": dataset.classes.all(),
        },
        status=200 if card.unlocked else 403,
    )


@login_required
def leaderboard_page(request):
    if not access_has_role(request.user, *PLAYER_ROLES):
        return _forbidden(request)
    period = request.GET.get("period", "weekly")
    if period not in PERIODS:
        period = "weekly"
    league, rows = leaderboard(player_id=request.user.pk, period=period)
    return render(
        request,
        "games/leaderboard.html",
        {"league": league, "rows": rows, "period": period, "periods": PERIODS},
    )


@login_required
def badges_page(request):
    if not access_has_role(request.user, *PLAYER_ROLES):
        return _forbidden(request)
    return render(
        request,
        "games/badges.html",
        {
            "badges": badge_cards(player_id=request.user.pk),
            "stats": player_stats(player_id=request.user.pk),
        },
    )
