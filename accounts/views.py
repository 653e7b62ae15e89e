from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import Token

from accounts.roles import Role
from accounts.selectors import user_roles
from accounts.services import api_token_rotate, user_sign_up
from tessera.errors import ApplicationError

from .forms import SignUpForm


def landing_url_for(user) -> str:  # type: ignore[no-untyped-def]
    """Where a user goes after logging in: the page of their main role."""
    roles = user_roles(user=user)
    if Role.VOLUNTEER in roles:
        return "games:index"
    return "home"


class TesseraLoginView(LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        from django.urls import reverse

        return reverse(landing_url_for(self.request.user))


def sign_up(request):
    if request.user.is_authenticated:
        return redirect(landing_url_for(request.user))
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = user_sign_up(
                username=data["username"],
                password=data["password1"],
                role=data["role"],
                email=data["email"],
                display_name=data["display_name"],
            )
        except ValidationError as exc:
            form.add_error("password1", exc)
        except ApplicationError as exc:
            form.add_error(exc.extra.get("field"), exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to Tessera. Your account is ready.")
            return redirect(landing_url_for(user))
    return render(
        request, "accounts/sign_up.html", {"form": form}, status=400 if form.errors else 200
    )


@login_required
def account(request):
    token = Token.objects.filter(user=request.user).first()
    return render(
        request,
        "accounts/account.html",
        {"roles": sorted(user_roles(user=request.user)), "has_token": token is not None},
    )


@login_required
@require_POST
def token_rotate(request):
    token = api_token_rotate(user=request.user)
    messages.success(request, "A new API token was created. Copy it now: it is shown only once.")
    return render(
        request,
        "accounts/account.html",
        {"roles": sorted(user_roles(user=request.user)), "has_token": True, "new_token": token.key},
    )
