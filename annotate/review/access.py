"""Who may review and who may adjudicate: the checks every review entry point uses."""

from __future__ import annotations

from accounts.access import access_has_role
from accounts.roles import Role
from annotate.models import ReviewItem
from tessera.errors import NotPermitted

REVIEWER_ROLES = (Role.CLINICIAN, Role.ADMIN)
ADJUDICATE_PERMISSION = "annotate.adjudicate_reviews"


def access_can_review(user) -> bool:  # type: ignore[no-untyped-def]
    return access_has_role(user, *REVIEWER_ROLES)


def access_can_adjudicate(user) -> bool:  # type: ignore[no-untyped-def]
    """Admins, and clinicians an admin designated (the `adjudicate_reviews` permission)."""
    if access_has_role(user, Role.ADMIN):
        return True
    return access_has_role(user, Role.CLINICIAN) and user.has_perm(ADJUDICATE_PERMISSION)


def access_require_review(user) -> None:  # type: ignore[no-untyped-def]
    if not access_can_review(user):
        raise NotPermitted("Only clinicians and admins review labels.")


def access_can_work_stage(user, stage: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether `user` may decide an item at `stage` (not counting earlier decisions)."""
    if stage == ReviewItem.Stage.ADJUDICATION:
        return access_can_adjudicate(user)
    return access_can_review(user)
