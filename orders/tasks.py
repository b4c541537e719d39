"""Periodic work on customers' data, run by the worker's schedule (kiosk/worker.py)."""

from django.conf import settings

from kiosk.jobs import job
from orders.privacy import customers_anonymise


@job(max_attempts=1)
def anonymise_customers() -> str:
    """LGPD retention: what `manage.py anonymise_customers` does, daily. Idempotent, so a second run at the same
    time (another worker) finds nothing left to do."""
    return customers_anonymise(older_than_days=settings.CUSTOMER_RETENTION_DAYS).summary()
