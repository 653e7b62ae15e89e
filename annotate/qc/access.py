"""Who may see and settle QC flags: the check every QC entry point uses."""

from __future__ import annotations

from accounts.access import access_has_role
from accounts.roles import Role
from annotate.models import Dataset
from tessera.errors import NotPermitted

QC_REVIEWER_ROLES = (Role.COORDINATOR, Role.CLINICIAN, Role.ADMIN)
# Queueing a training or a batch scoring costs worker minutes: coordinators and admins.
QC_MANAGER_ROLES = (Role.COORDINATOR, Role.ADMIN)


def access_can_review_qc(user) -> bool:  # type: ignore[no-untyped-def]
    return access_has_role(user, *QC_REVIEWER_ROLES)


def dataset_get_for_qc(*, user, slug: str, manage: bool = False) -> Dataset:  # type: ignore[no-untyped-def]
    """The dataset if `user` may review (or, with `manage`, train and batch-score) its QC flags."""
    roles = QC_MANAGER_ROLES if manage else QC_REVIEWER_ROLES
    if not access_has_role(user, *roles):
        raise NotPermitted("Only coordinators, clinicians and admins review intake QC.")
    dataset = Dataset.objects.filter(slug=slug).first()
    if dataset is None:
        raise NotPermitted("No such dataset.")
    return dataset
