from __future__ import annotations

import io
import json
from urllib.parse import urlencode
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST
from PIL import Image as PILImage

from accounts.access import access_has_role, access_require_role
from accounts.roles import Role
from annotate.export import ExportFilters, export_request
from annotate.export.selectors import (
    export_datasets_for_user,
    export_list_for_user,
    export_withdrawn_items,
)
from annotate.models import ConsensusMask, Dataset, Export, ReviewDecision, ReviewItem
from annotate.review import (
    review_decision_submit,
    review_item_claim,
    review_item_claim_next,
    review_item_release,
)
from annotate.review.selectors import (
    review_context,
    review_item_get_for_reviewer,
    review_probability_rgba,
    review_queue,
)
from annotate.selectors import (
    dataset_class_balance,
    dataset_consensus_summary,
    dataset_get_for_viewer,
    dataset_list_for_viewer,
    dataset_models_for_viewer,
    image_get_for_viewing,
    image_viewable,
)
from tessera.errors import ApplicationError, Conflict, NotPermitted


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
    for image in page:
        image.viewable = image_viewable(user=request.user, status=image.status)
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


# --- clinician review ------------------------------------------------------------------------------


_SETTLED_MESSAGES = {
    ReviewDecision.Action.CONFIRM: "Decision saved: the label is gold now.",
    ReviewDecision.Action.RELABEL: "Decision saved: your label is gold now.",
    ReviewDecision.Action.CONTOUR: "Decision saved: your contour is the gold outline now.",
    ReviewDecision.Action.RELEASE: "Decision saved: the image is back in play.",
    ReviewDecision.Action.UNUSABLE: "Decision saved: the image is out of play for good.",
}


def _forbidden(request, exc: NotPermitted):
    return render(request, "403.html", {"message": exc.message}, status=403)


def _queue_filters(source) -> dict[str, str]:  # type: ignore[no-untyped-def]
    reasons = set(ReviewItem.Reason.values)
    filters = {
        "dataset": (source.get("dataset") or "").strip(),
        "reason": source.get("reason") if source.get("reason") in reasons else "",
    }
    return {k: v for k, v in filters.items() if v}


def _queue_url(filters: dict[str, str]) -> str:
    url = reverse("annotate:review-queue")
    return f"{url}?{urlencode(filters)}" if filters else url


@login_required
@require_GET
def review_queue_page(request):
    filters = _queue_filters(request.GET)
    try:
        items = review_queue(
            user=request.user, dataset_slug=filters.get("dataset"), reason=filters.get("reason")
        )
    except NotPermitted as exc:
        return _forbidden(request, exc)
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "annotate/review_queue.html",
        {
            "page": page,
            "filters": filters,
            "datasets": Dataset.objects.order_by("name").values_list("slug", "name"),
            "reasons": ReviewItem.Reason.choices,
            "now": timezone.now(),
        },
    )


@login_required
@require_POST
def review_next(request):
    filters = _queue_filters(request.POST)
    try:
        item = review_item_claim_next(
            user=request.user, dataset_slug=filters.get("dataset"), reason=filters.get("reason")
        )
    except NotPermitted as exc:
        return _forbidden(request, exc)
    if item is None:
        messages.info(request, "The queue is empty: nothing left to review.")
        return redirect(_queue_url(filters))
    return redirect(_item_url(item.pk, filters))


def _item_url(item_id: int, filters: dict[str, str]) -> str:
    url = reverse("annotate:review-item", args=[item_id])
    return f"{url}?{urlencode(filters)}" if filters else url


@login_required
@require_GET
def review_item_page(request, item_id: int):
    try:
        item = review_item_get_for_reviewer(user=request.user, item_id=item_id)
    except NotPermitted as exc:
        return _forbidden(request, exc)
    context = review_context(user=request.user, item=item)
    return render(
        request,
        "annotate/review_item.html",
        {
            "ctx": context,
            "filters": _queue_filters(request.GET),
            "is_segmentation": item.image.dataset.task == Dataset.Task.SEGMENTATION,
            "modality": item.image.modality or item.image.dataset.modality,
        },
    )


@login_required
@require_POST
def review_claim_view(request, item_id: int):
    filters = _queue_filters(request.POST)
    try:
        review_item_claim(item_id=item_id, user=request.user)
    except NotPermitted as exc:
        return _forbidden(request, exc)
    except Conflict as exc:
        messages.error(request, exc.message)
    return redirect(_item_url(item_id, filters))


@login_required
@require_POST
def review_release_view(request, item_id: int):
    review_item_release(item_id=item_id, user=request.user)
    return redirect(_queue_url(_queue_filters(request.POST)))


@login_required
@require_POST
def review_decide_view(request, item_id: int):
    filters = _queue_filters(request.POST)
    geometry = None
    if request.POST.get("geometry"):
        try:
            geometry = json.loads(request.POST["geometry"])
        except ValueError:
            messages.error(request, "The edited contour could not be read.")
            return redirect(_item_url(item_id, filters))
    try:
        decision = review_decision_submit(
            item_id=item_id,
            user=request.user,
            action=request.POST.get("action", ""),
            label=request.POST.get("label") or None,
            geometry=geometry,
            note=request.POST.get("note", ""),
        )
    except NotPermitted as exc:
        return _forbidden(request, exc)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(_item_url(item_id, filters))
    decision.item.refresh_from_db()
    if decision.item.status == ReviewItem.Status.RESOLVED:
        messages.success(request, _SETTLED_MESSAGES.get(decision.action, "Decision saved."))
    else:
        messages.success(
            request, f"Sent on for {decision.item.get_stage_display().lower()}. Thank you."
        )
    nxt = review_item_claim_next(
        user=request.user, dataset_slug=filters.get("dataset"), reason=filters.get("reason")
    )
    return redirect(_item_url(nxt.pk, filters) if nxt else _queue_url(filters))


@login_required
@require_GET
@cache_control(private=True, max_age=300)
def review_probability_png(request, item_id: int):
    """The STAPLE probability map of the item's image as a translucent PNG overlay."""
    try:
        item = review_item_get_for_reviewer(user=request.user, item_id=item_id)
    except NotPermitted:
        raise Http404("No such map.") from None
    record = ConsensusMask.objects.filter(image=item.image).first()
    if record is None or not record.probability:
        raise Http404("No such map.")
    out = io.BytesIO()
    PILImage.fromarray(review_probability_rgba(record=record), mode="RGBA").save(out, "PNG")
    return HttpResponse(out.getvalue(), content_type="image/png")


# --- researcher export -----------------------------------------------------------------------------


@login_required
@require_GET
def export_datasheet(request, export_id: int):
    """The datasheet of a ready snapshot, readable without downloading the archive."""
    import zipfile

    from annotate.export.selectors import export_get_for_user

    try:
        export = export_get_for_user(user=request.user, export_id=export_id)
    except NotPermitted as exc:
        return _forbidden(request, exc)
    if export.status != Export.Status.READY or not export.file:
        raise Http404("This export is not ready.")
    with export.file.open("rb") as handle, zipfile.ZipFile(handle) as archive:
        try:
            text = archive.read("datasheet.md").decode("utf-8")
        except KeyError:
            raise Http404("This export has no datasheet.") from None
    return render(request, "annotate/export_datasheet.html", {"export": export, "text": text})


@login_required
def export_page(request):
    """The researcher's exports: request a snapshot, follow its progress, download it, and see
    which items a later withdrawal affected."""
    try:
        exports = list(export_list_for_user(user=request.user)[:50])
        datasets = export_datasets_for_user(user=request.user)
    except NotPermitted as exc:
        return _forbidden(request, exc)
    if request.method == "POST":
        return _export_create(request, datasets)
    withdrawn = {
        e.pk: [str(i.public_id) for i in export_withdrawn_items(export=e)]
        for e in exports
        if e.n_withdrawn
    }
    return render(
        request,
        "annotate/export_list.html",
        {
            "exports": [(e, withdrawn.get(e.pk, [])) for e in exports],
            "datasets": datasets,
            "formats": Export.Format.choices,
        },
    )


def _export_create(request, datasets):  # type: ignore[no-untyped-def]
    dataset = datasets.filter(slug=request.POST.get("dataset", "")).first()
    if dataset is None:
        messages.error(request, "Choose a dataset.")
        return redirect("annotate:export-list")
    try:
        filters = ExportFilters(
            classes=tuple(request.POST.getlist("classes")),
            min_confidence=float(request.POST.get("min_confidence") or 0),
            min_labels=int(request.POST.get("min_labels") or 0),
            gold_only=request.POST.get("gold_only") == "on",
        )
        export = export_request(
            user=request.user,
            dataset=dataset,
            filters=filters,
            fmt=request.POST.get("format") or Export.Format.ALL,
        )
    except ValueError:
        messages.error(request, "Minimum confidence and labels must be numbers.")
        return redirect("annotate:export-list")
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("annotate:export-list")
    messages.success(request, f"Export v{export.version} of {dataset.name} requested.")
    return redirect("annotate:export-list")


@login_required
def dataset_model(request, slug: str):
    try:
        dataset = dataset_get_for_viewer(user=request.user, slug=slug)
        versions, curve = dataset_models_for_viewer(user=request.user, dataset=dataset)
    except NotPermitted as exc:
        return render(request, "403.html", {"message": exc.message}, status=403)
    current = next((v for v in versions if v.status == "ready"), None)
    return render(
        request,
        "annotate/dataset_model.html",
        {
            "dataset": dataset,
            "versions": versions,
            "current": current,
            "curve": curve,
            "can_train": access_has_role(request.user, Role.ADMIN),
        },
    )


@login_required
@require_POST
def dataset_model_train(request, slug: str):
    from annotate.tasks import model_train_task

    try:
        dataset = dataset_get_for_viewer(user=request.user, slug=slug)
        access_require_role(request.user, Role.ADMIN)
    except NotPermitted as exc:
        return render(request, "403.html", {"message": exc.message}, status=403)
    model_train_task.delay_on_commit(dataset.pk)
    messages.success(request, "Training queued. The new version appears here when it is ready.")
    return redirect("annotate:dataset-model", slug=slug)
