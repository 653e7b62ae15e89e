from __future__ import annotations

from django.db import connection

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
        cached = {name for name in _group_names(user.pk) if name in valid}
        user._tessera_roles = cached
    return set(cached)


def _group_names(user_id: int) -> list[str]:
    """The user's group names: every API request asks, so the SQL is written once."""
    table = User.groups.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT g.name FROM auth_group g JOIN {table} ug ON ug.group_id = g.id"  # noqa: S608
            " WHERE ug.user_id = %s",
            [user_id],
        )
        return [name for (name,) in cursor.fetchall()]
