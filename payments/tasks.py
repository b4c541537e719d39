"""Payment work done by the worker (`manage.py run_worker`), never inside a kiosk's or Mercado Pago's request.

Enqueued by the services inside their transactions (kiosk.jobs.enqueue), so a task exists exactly when the
change that asked for it was committed. Each may run more than once (a retry, a killed worker): each is
idempotent (deliveries are claimed, refunds carry their request key, applying an order never moves back).
"""

import logging

from kiosk.jobs import job
from kiosk.problems import DomainError
from payments import webhooks
from payments.services import apply, checkout, reconcile, refunds
from payments.services.ledger import note

logger = logging.getLogger("payments.tasks")


@job(max_attempts=3)
def process_notification(delivery_id: int) -> str:
    """Fetches what a stored, verified notification is about from Mercado Pago and applies it. If Mercado Pago
    cannot be reached, the delivery keeps its own schedule of attempts (`retry_notifications`)."""
    return webhooks.delivery_run(delivery_id)


@job(max_attempts=10, base_delay=10)
def refund_automatically(payment_id: int) -> str:
    """The full refund of money that must not be kept (paid for a cancelled or already paid order). Bound to
    the payment by its request key: however often it runs, Mercado Pago is asked for one refund."""
    try:
        refund = refunds.refund_request(
            payment_id=payment_id,
            amount=None,
            reason=note(refunds.AUTOMATIC_REASON),
            actor="system",
            request_key=refunds.request_key_for(caller="system", key=f"automatic-refund-{payment_id}"),
        )
    except DomainError as exc:  # nothing left to refund, or a review holds it: retrying changes nothing
        logger.warning("automatic refund of payment %s not made: %s", payment_id, exc)
        return f"not made: {exc}"
    return f"refund {refund.pk} {refund.status}"


@job(max_attempts=5, base_delay=10)
def cancel_at_provider(payment_ids: list[int]) -> None:
    """Closes at Mercado Pago the QRs we gave up (best effort; `reconcile_payments` catches the rest)."""
    apply.cancel_at_provider(payment_ids)


@job(max_attempts=1)
def reconcile_payments() -> str:
    checked, retried = reconcile.payments_reconcile()
    return f"checked {checked}, refunds retried {retried}"


@job(max_attempts=1)
def cancel_stale_orders() -> int:
    return checkout.orders_cancel_stale()


@job(max_attempts=1)
def retry_notifications() -> int:
    return webhooks.deliveries_retry()


@job(max_attempts=3)
def purge_notifications() -> int:
    return webhooks.deliveries_purge()
