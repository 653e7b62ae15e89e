from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from annotate.selectors import (
    dataset_class_balance,
    dataset_consensus_summary,
    dataset_get_for_viewer,
    dataset_list_for_viewer,
    image_get_for_viewing,
)
from tessera.errors import NotPermitted


@login_required
def dataset_list(request):
    try:
        datasets = dataset_list_for_viewer(user=request.user)
    except NotPermitted as exc:
        return render(request, "403.html", {"message": exc.message}, status=403)
    return render(request, "annotate/dataset_list.html", {"datasets": datasets})


@login_required
def dataset_detail(request, slug: str):
    try:
        dataset = dataset_get_for_viewer(user=request.user, slug=slug)
    except NotPermitted as exc:
        return render(request, "403.html", {"message": exc.message}, status=403)
    images = dataset.images.select_related("gold_class").order_by("id")
    page = Paginator(images, 60).get_page(request.GET.get("page"))
    return render(
        request,
        "annotate/dataset_detail.html",
        {
            "dataset": dataset,
            "page": page,
            "balance": dataset_class_balance(dataset=dataset),
            "consensus": dataset_consensus_summary(dataset=dataset),
        },
    )


def _serve(request, public_id: UUID, field: str):
    try:
        image = image_get_for_viewing(user=request.user, public_id=public_id)
    except NotPermitted:
        raise Http404("No such image.") from None
    stored = getattr(image, field)
    if not stored:
        raise Http404("No such image.")
    response = FileResponse(stored.open("rb"))
    # Private: a shared cache must never keep a medical image.
    response["Content-Disposition"] = "inline"
    return response


@login_required
@require_GET
@cache_control(private=True, max_age=3600)
def image_file(request, public_id: UUID):
    return _serve(request, public_id, "file")


@login_required
@require_GET
@cache_control(private=True, max_age=3600)
def image_thumbnail(request, public_id: UUID):
    return _serve(request, public_id, "thumbnail")
