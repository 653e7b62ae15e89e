"""Access helpers every entry point uses (views, API views, consumers)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from accounts.selectors import user_roles
from tessera.errors import NotPermitted


def access_has_role(user, *roles: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(user_roles(user=user) & set(roles))


def access_require_role(user, *roles: str) -> None:  # type: ignore[no-untyped-def]
    """Raise `NotPermitted` unless `user` holds one of `roles`."""
    if not access_has_role(user, *roles):
        raise NotPermitted("Your account does not have access to this.")


def HasRole(*roles: str) -> type[BasePermission]:  # noqa: N802 - reads like a class in views
    """DRF permission class admitting authenticated users who hold one of `roles`."""

    class _HasRole(BasePermission):
        message = "Your account does not have access to this."

        def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
            return bool(request.user and request.user.is_authenticated) and access_has_role(
                request.user, *roles
            )

    _HasRole.__name__ = f"HasRole({', '.join(roles)})"
    return _HasRole
