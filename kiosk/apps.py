from django.apps import AppConfig


class KioskConfig(AppConfig):
    """Cross-cutting pieces of the project: idempotency records, problem details, roles."""

    name = "kiosk"
    verbose_name = "Kiosk platform"

    def ready(self):
        from kiosk import checks  # noqa: F401 (registers the system checks)
