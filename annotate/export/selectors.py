"""Reads for researcher exports, with the object-level rule: an export is its requester's
(and admins') only."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.access import access_has_role, access_require_role
from accounts.roles import Role
from annotate.models import Dataset, Export, ExportItem
from tessera.errors import NotPermitted


def export_list_for_user(*, user, dataset: Dataset | None = None) -> QuerySet[Export]:  # type: ignore[no-untyped-def]
    """The user's exports, newest first (admins: everybody's)."""
    access_require_role(user, Role.RESEARCHER, Role.ADMIN)
    exports = Export.objects.select_related("dataset", "created_by")
    if not access_has_role(user, Role.ADMIN):
        exports = exports.filter(created_by=user)
    if dataset is not None:
        exports = exports.filter(dataset=dataset)
    return exports.order_by("-created_at", "-id")


def export_get_for_user(*, user, export_id: int) -> Export:  # type: ignore[no-untyped-def]
    """One export the user may see; `NotPermitted` (never saying whether it exists) otherwise."""
    if not access_has_role(user, Role.RESEARCHER, Role.ADMIN):
        raise NotPermitted("No such export.")
    export = export_list_for_user(user=user).filter(pk=export_id).first()
    if export is None:
        raise NotPermitted("No such export.")
    return export


def export_withdrawn_items(*, export: Export) -> list[ExportItem]:
    """The items of `export` a donor's withdrawal marked: what the researcher must delete."""
    return list(export.items.filter(withdrawn_at__isnull=False).order_by("id"))


def export_datasets_for_user(*, user) -> QuerySet[Dataset]:  # type: ignore[no-untyped-def]
    access_require_role(user, Role.RESEARCHER, Role.ADMIN)
    return Dataset.objects.prefetch_related("classes").order_by("name")
