"""Pages for donors (consent, images, uploads, withdrawal) and site coordinators (paper
consents, uploads, the review quarantine). Thin: parse, check access in selectors, call a
service, render."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.access import access_has_role
from accounts.roles import Role
from consent import selectors
from consent.forms import (
    ConsentSignForm,
    PaperConsentForm,
    ReviewForm,
    UploadForm,
    WithdrawWithCodeForm,
)
from consent.models import Consent, IntakeItem
from consent.services.consents import consent_give, consent_record_paper
from consent.services.intake import intake_batch_create
from consent.services.review import boxes_validate, intake_item_reject, intake_item_release
from consent.services.withdrawal import consent_withdraw, donor_withdraw_with_code
from consent.throttle import client_address, throttle_hit
from tessera.errors import ApplicationError, NotPermitted


def _forbidden(request, exc: ApplicationError, status: int = 403):
    return render(request, "403.html", {"message": exc.message}, status=status)


@login_required
def overview(request):
    """Donors: my consents and what to sign. Coordinators: consents I recorded, my uploads."""
    try:
        visible = selectors.consents_visible_to(user=request.user)
        batches = list(selectors.intake_batches_visible_to(user=request.user)[:20])
    except NotPermitted as exc:
        return _forbidden(request, exc)
    donor = selectors.donor_for_user(user=request.user)
    query = request.GET.get("q", "").strip()
    if query:
        visible = visible.filter(donor__pseudonym__icontains=query)
    page = Paginator(visible, 25).get_page(request.GET.get("page"))
    signed = set()
    if donor is not None:
        signed = set(
            visible.filter(donor=donor, status=Consent.Status.ACTIVE).values_list(
                "form_id", flat=True
            )
        )
    forms = [f for f in selectors.consent_forms_published() if f.pk not in signed]
    return render(
        request,
        "consent/overview.html",
        {
            "donor": donor,
            "consents": page,
            "page": page,
            "query": query,
            "forms": forms,
            "batches": batches,
            "is_coordinator": access_has_role(request.user, Role.COORDINATOR, Role.ADMIN),
            "is_admin": access_has_role(request.user, Role.ADMIN),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def consent_sign(request, form_id: int):
    donor = selectors.donor_for_user(user=request.user)
    try:
        if donor is None:
            raise NotPermitted("Only donors can sign a consent online.")
        consent_form = selectors.consent_form_get_published(form_id=form_id)
    except NotPermitted as exc:
        return _forbidden(request, exc)
    form = ConsentSignForm(request.POST or None, consent_form=consent_form)
    if request.method == "POST" and form.is_valid():
        try:
            given = consent_give(
                donor=donor,
                form=consent_form,
                decisions=form.decisions(),
                actor_id=request.user.pk,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            # Rendered, not redirected: the revocation code exists only in this response.
            return render(
                request,
                "consent/signed.html",
                {"consent": given.consent, "revocation_code": given.revocation_code},
            )
    return render(
        request,
        "consent/sign.html",
        {"consent_form": consent_form, "form": form},
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def consent_withdraw_view(request, consent_id: int):
    try:
        consent = selectors.consent_get_for_user(user=request.user, consent_id=consent_id)
    except NotPermitted as exc:
        return _forbidden(request, exc, status=404)
    if request.method == "POST":
        result = consent_withdraw(
            consent_id=consent.pk,
            actor_id=request.user.pk,
            channel=selectors.withdrawal_channel_for(user=request.user, consent=consent),
        )
        messages.success(
            request,
            f"Consent withdrawn. {len(result.image_ids)} image(s) were removed from every game "
            "and future export, and their files deleted.",
        )
        return redirect("consent:overview")
    n_images = consent.images.exclude(status="withdrawn").count()
    return render(request, "consent/withdraw.html", {"consent": consent, "n_images": n_images})


@require_http_methods(["GET", "POST"])
def withdraw_with_code(request):
    """Public: withdraw every consent of a donor with their ID and revocation code."""
    form = WithdrawWithCodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        donor_id = form.cleaned_data["donor_id"].strip().upper()
        if throttle_hit(scope="revoke", keys=[f"ip:{client_address(request)}", f"d:{donor_id}"]):
            form.add_error(None, "Too many attempts. Please wait 15 minutes and try again.")
            status = 429
        else:
            try:
                results = donor_withdraw_with_code(
                    pseudonym=donor_id,
                    code=form.cleaned_data["code"],
                    actor_id=request.user.pk if request.user.is_authenticated else None,
                )
            except NotPermitted as exc:
                form.add_error(None, exc.message)
                status = 400
            else:
                return render(
                    request,
                    "consent/withdrawn_with_code.html",
                    {
                        "n_consents": sum(not r.already_withdrawn for r in results),
                        "n_images": sum(len(r.image_ids) for r in results),
                    },
                )
    elif request.method == "POST":
        status = 400
    return render(request, "consent/withdraw_with_code.html", {"form": form}, status=status)


@login_required
def my_images(request):
    try:
        rows = selectors.donor_images(user=request.user)
    except NotPermitted as exc:
        return _forbidden(request, exc)
    return render(request, "consent/my_images.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def paper_consent(request, form_id: int):
    try:
        if not access_has_role(request.user, Role.COORDINATOR, Role.ADMIN):
            raise NotPermitted("Only site coordinators record paper consents.")
        consent_form = selectors.consent_form_get_published(form_id=form_id)
    except NotPermitted as exc:
        return _forbidden(request, exc)
    form = PaperConsentForm(request.POST or None, consent_form=consent_form)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        given_at = dt.datetime.combine(data["given_on"], dt.time(12), tzinfo=dt.UTC)
        try:
            given = consent_record_paper(
                form=consent_form,
                decisions=form.decisions(),
                given_at=min(given_at, timezone.now()),
                actor_id=request.user.pk,
                donor_pseudonym=data["donor_pseudonym"],
                revocation_code=data["revocation_code"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return render(
                request,
                "consent/signed.html",
                {"consent": given.consent, "revocation_code": given.revocation_code, "paper": True},
            )
    return render(
        request,
        "consent/paper.html",
        {"consent_form": consent_form, "form": form},
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def upload(request):
    if not access_has_role(request.user, Role.DONOR, Role.COORDINATOR, Role.ADMIN):
        return _forbidden(request, NotPermitted("Only donors and site coordinators upload."))
    consents = selectors.consents_for_upload(user=request.user)
    form = UploadForm(
        request.POST or None,
        request.FILES or None,
        consents=consents,
        datasets=selectors.datasets_for_upload(),
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            consent = selectors.consent_get_for_upload(
                user=request.user, consent_id=data["consent"].pk
            )
            batch = intake_batch_create(
                uploaded_by=request.user,
                consent=consent,
                dataset=data["dataset"],
                files=data["files"],
            )
        except ApplicationError as exc:
            form.add_error(exc.extra.get("field"), exc.message)
        else:
            return redirect("consent:batch", public_id=batch.public_id)
    return render(
        request,
        "consent/upload.html",
        {"form": form, "has_consent": consents.exists()},
        status=400 if form.errors else 200,
    )


@login_required
def batch(request, public_id: UUID):
    try:
        found = selectors.intake_batch_get_for_user(user=request.user, public_id=public_id)
    except NotPermitted as exc:
        return _forbidden(request, exc, status=404)
    return render(
        request,
        "consent/batch.html",
        {
            "batch": found,
            "progress": selectors.intake_batch_progress(batch=found),
            "progress_url": reverse("api-intake-batch", args=[found.public_id]),
        },
    )


@login_required
def review_list(request):
    try:
        items = list(selectors.intake_review_queue(user=request.user)[:100])
    except NotPermitted as exc:
        return _forbidden(request, exc)
    return render(request, "consent/review_list.html", {"items": items})


@login_required
@require_http_methods(["GET", "POST"])
def review_item(request, public_id: UUID):
    try:
        item = selectors.intake_item_get_for_review(user=request.user, public_id=public_id)
    except NotPermitted as exc:
        return _forbidden(request, exc, status=404)
    form = ReviewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        action = form.cleaned_data["action"]
        try:
            if action == "reject":
                intake_item_reject(
                    item_id=item.pk, actor_id=request.user.pk, reason=form.cleaned_data["reason"]
                )
            else:
                boxes = []
                if action == "redact":
                    boxes = boxes_validate(
                        form.cleaned_data["boxes"],
                        width=item.image.width,
                        height=item.image.height,
                    )
                    if not boxes:
                        raise ApplicationError("Choose or draw at least one region to black out.")
                intake_item_release(item_id=item.pk, actor_id=request.user.pk, boxes=boxes)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            verb = "rejected" if action == "reject" else "released"
            messages.success(request, f"Image {verb}.")
            return redirect("consent:review-list")
    return render(
        request,
        "consent/review_item.html",
        {"item": item, "form": form, "statuses": IntakeItem.Status},
        status=400 if form.errors else 200,
    )
