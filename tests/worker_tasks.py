"""Tasks that exist for the worker tests only (a worker process imports them by their path)."""

import time

from kiosk.jobs import job


@job(max_attempts=3, base_delay=0.01)
def slow_marker(name: str, seconds: float) -> str:
    """Sleeps, then leaves a mark (a category) that the test looks for."""
    from orders.models import Category

    time.sleep(seconds)
    Category.objects.get_or_create(slug=name, defaults={"name": name})
    return name


@job(max_attempts=3, base_delay=0.01)
def always_fails(name: str) -> None:
    raise RuntimeError(f"{name} fails on purpose")
