from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        # Setup, not business logic: the role groups need every app's permissions, which exist
        # only after each app's own post_migrate, so sync after each (it is idempotent and cheap).
        post_migrate.connect(_sync_groups, dispatch_uid="accounts.role_groups_sync")


def _sync_groups(sender, **kwargs) -> None:  # type: ignore[no-untyped-def]
    from accounts.services import role_groups_sync

    role_groups_sync()
