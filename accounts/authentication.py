"""API token authentication: DRF's, with its one read per request written once."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from accounts.models import User
from tessera import db


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>``, as DRF's ``TokenAuthentication``.

    DRF reads the token with ``select_related("user")``, which the ORM builds and compiles again
    on every request (most of the cost of authenticating a game move); here the user is read by
    the token's key with SQL written once (``tessera.db``). Same answers: an unknown key or an
    inactive user is refused with 401.
    """

    def authenticate_credentials(self, key: str) -> tuple[User, Token]:
        user = db.instance(
            User, 'id = (SELECT user_id FROM authtoken_token WHERE "key" = %s)', [key]
        )
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, Token(key=key, user=user)
