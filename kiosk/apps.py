from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy as _


class KioskConfig(AppConfig):
    """Cross-cutting pieces of the project: idempotency records, problem details, roles."""

    name = "kiosk"
    verbose_name = _("Kiosk platform")

    def ready(self):
        from kiosk import checks  # noqa: F401 (registers the system checks)

        # django-tasks-db names its app in plain English, out of reach of any catalogue: the back office's
        # heading for the background tasks is ours (its models' own words are in kiosk/third_party_words.py).
        if apps.is_installed("django_tasks_db"):
            apps.get_app_config("django_tasks_database").verbose_name = _("Background tasks")
