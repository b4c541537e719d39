"""WSGI entry point for gunicorn: `gunicorn kiosk.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiosk.settings")

application = get_wsgi_application()

from kiosk.checks import fail_fast_on_missing_timezone_tables  # noqa: E402 (needs the settings loaded)

fail_fast_on_missing_timezone_tables()
