"""The per-dataset QC grid: flagged images as thumbnails, one click to settle each."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts.access import access_has_role
from annotate.qc.access import QC_MANAGER_ROLES, dataset_get_for_qc
from annotate.qc.selectors import qc_overview
from annotate.qc.services import qc_decide
from tessera.errors import ApplicationError, NotPermitted


def _wants_json(request) -> bool:  # type: ignore[no-untyped-def]
    return "application/json" in request.headers.get("Accept", "")


def _refuse(request, exc: ApplicationError):  # type: ignore[no-untyped-def]
    if _wants_json(request):
        return JsonResponse({"detail": exc.message}, status=exc.status_code)
    if isinstance(exc, NotPermitted):
        return render(request, "403.html", {"message": exc.message}, status=403)
    messages.error(request, exc.message)
    return None


@login_required
@require_GET
def qc_page(request, slug: str):
    try:
        dataset = dataset_get_for_qc(user=request.user, slug=slug)
    except NotPermitted as exc:
        return _refuse(request, exc)
    return render(
        request,
        "annotate/qc/grid.html",
        {
            "dataset": dataset,
            "overview": qc_overview(dataset=dataset),
            "can_manage": access_has_role(request.user, *QC_MANAGER_ROLES),
            # Embedded mode: tasks run inside the request, so training holds the page a while.
            "tasks_inline": settings.CELERY_TASK_ALWAYS_EAGER,
        },
    )


@login_required
@require_POST
def qc_decide_view(request, slug: str, public_id: UUID):
    try:
        dataset = dataset_get_for_qc(user=request.user, slug=slug)
        qc = qc_decide(
            user=request.user,
            dataset=dataset,
            public_id=public_id,
            action=request.POST.get("action", ""),
        )
    except ApplicationError as exc:
        response = _refuse(request, exc)
        if response is not None:
            return response
    else:
        if _wants_json(request):
            return JsonResponse(
                {"image": str(public_id), "state": qc.state, "status": qc.image.status}
            )
        messages.success(request, f"Image {qc.get_state_display().lower()}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("annotate:dataset-qc", args=[slug])
    return redirect(target)


def _queue(request, slug: str, what: str):  # type: ignore[no-untyped-def]
    from annotate.tasks import qc_dataset_score_task, qc_train_task

    try:
        dataset = dataset_get_for_qc(user=request.user, slug=slug, manage=True)
    except NotPermitted as exc:
        return _refuse(request, exc)
    task = qc_train_task if what == "train" else qc_dataset_score_task
    task.delay_on_commit(dataset.pk)
    messages.success(
        request,
        "QC training queued." if what == "train" else "Scoring of every image queued.",
    )
    return redirect("annotate:dataset-qc", slug=slug)


@login_required
@require_POST
def qc_train_view(request, slug: str):
    return _queue(request, slug, "train")


@login_required
@require_POST
def qc_score_view(request, slug: str):
    return _queue(request, slug, "score")
