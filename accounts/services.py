"""Writes for accounts: sign-up, roles, API tokens."""

from __future__ import annotations

import logging

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from rest_framework.authtoken.models import Token

from accounts.models import User
from accounts.roles import ROLE_PERMISSIONS, SELF_SERVICE_ROLES, Role
from consent.services import audit_event_record, donor_create
from tessera.errors import ApplicationError

logger = logging.getLogger(__name__)


def role_groups_sync() -> None:
    """Create one group per role holding exactly the permissions in `ROLE_PERMISSIONS`.

    Idempotent; runs after every migrate. A permission that does not exist yet (its app not
    migrated) is skipped and picked up on the next run.
    """
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role.value)
        wanted = []
        for dotted in ROLE_PERMISSIONS.get(role, ()):
            app_label, codename = dotted.split(".", 1)
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is not None:
                wanted.append(perm)
        group.permissions.set(wanted)


def user_grant_role(*, user: User, role: str, actor_id: int | None = None) -> None:
    """Add `user` to the group of `role` (and make admins staff so they reach the admin site)."""
    if role not in Role.values:
        raise ApplicationError(f"Unknown role: {role}")
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    if role == Role.ADMIN and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    user.__dict__.pop("_tessera_roles", None)
    audit_event_record(
        actor_id=actor_id, action="account.role_granted", target=user, details={"role": role}
    )


@transaction.atomic
def user_sign_up(
    *,
    username: str,
    password: str,
    role: str = Role.VOLUNTEER,
    email: str = "",
    display_name: str = "",
) -> User:
    """Create an account for a volunteer or a donor. Other roles are granted by an admin.

    A donor account gets its pseudonymous `Donor` record at once, so the donor can consent
    and upload without waiting for anyone.
    """
    if role not in SELF_SERVICE_ROLES:
        raise ApplicationError("This role is granted by an administrator, not on sign-up.")
    if User.objects.filter(username__iexact=username).exists():
        raise ApplicationError("That username is taken.", extra={"field": "username"})
    user = User(username=username, email=email, display_name=display_name)
    validate_password(password, user)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    audit_event_record(
        actor_id=user.pk, action="account.signed_up", target=user, details={"role": role}
    )
    user_grant_role(user=user, role=role, actor_id=user.pk)
    if role == Role.DONOR:
        donor_create(user_id=user.pk, actor_id=user.pk)
    return user


def api_token_rotate(*, user: User) -> Token:
    """Replace the user's API token with a new one (the old one stops working at once)."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        token = Token.objects.create(user=user)
    audit_event_record(actor_id=user.pk, action="account.token_rotated", target=user)
    return token
