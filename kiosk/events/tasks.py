"""The worker's tasks for outgoing webhooks."""

from kiosk.events import delivery
from kiosk.jobs import job


@job(max_attempts=5)
def deliver_event(delivery_id: int) -> str:
    """Sends one event to one endpoint. HTTP failures are the delivery's own retries (delivery.py); this
    task's retries only cover the worker's own trouble (the database going away mid-send)."""
    return delivery.deliver(delivery_id)


@job(max_attempts=1)
def sweep_deliveries() -> int:
    return delivery.deliveries_sweep()
