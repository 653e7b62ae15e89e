from django.apps import AppConfig


class TesseraConfig(AppConfig):
    name = "tessera"
    verbose_name = "Tessera platform"

    def ready(self) -> None:
        from tessera import checks  # noqa: F401 - registers the system checks
