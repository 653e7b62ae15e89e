from __future__ import annotations

from accounts.models import User
from accounts.roles import Role


def user_roles(*, user: User) -> set[str]:
    """The role names of `user` (group names that are roles); superusers hold every role."""
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return {r.value for r in Role}
    # Cached on the instance: templates and access checks ask several times per request.
    cached = getattr(user, "_tessera_roles", None)
    if cached is None:
        valid = {r.value for r in Role}
        cached = {name for name in user.groups.values_list("name", flat=True) if name in valid}
        user._tessera_roles = cached
    return set(cached)
