"""What happens to a simulated order on Mercado Pago's side: the buyer pays (or is declined), the QR expires,
refunds are confirmed. The API (api.py) and the pay page (views.py) call these; so can tests.

QR order life cycle (Mercado Pago's "status of an order and a transaction" page for QR Code):

    created --paid--> processed/accredited --full refund--> refunded/refunded
       |                     \\--partial refund--> processed/partially_refunded
       |--canceled via API--> canceled/canceled     (transaction canceled/canceled_by_api)
       |--time is up--------> expired/expired       (transaction expired/expired)
       \\--payment declined--> failed/failed         (transaction failed/rejected_by_issuer)
"""

import logging
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from payments.simulator import notify as notifications
from payments.simulator import shapes
from payments.simulator.errors import ApiError, orders_error
from payments.simulator.models import SimOrder, SimPayment, SimRefund

OUTCOMES = ("approved", "rejected", "expired")
logger = logging.getLogger(__name__)

MAX_DUPLICATES = 10
MAX_DELAY_S = 30


def lock_order(order_id: str) -> SimOrder:
    """The order, locked for update until the transaction ends; 404 order_not_found if there is none."""
    try:
        return SimOrder.objects.select_for_update().get(pk=order_id)
    except SimOrder.DoesNotExist:
        raise orders_error(404, "order_not_found", "Order not found.")


def touch(order: SimOrder, now=None) -> None:
    """Record a change: a new version and last_updated_date (saved by the caller)."""
    order.version += 1
    order.last_updated_date = now or timezone.now()


def expire_if_due(order: SimOrder) -> bool:
    """Mercado Pago expires an unpaid order when its expiration_time is up; the simulator does it lazily, the
    first time the order is looked at afterwards. No notification is sent for a lazy expiry. The order must
    be locked. Returns True if it expired now."""
    now = timezone.now()
    if order.status != "created" or now < order.expires_at:
        return False
    order.status = order.status_detail = "expired"
    touch(order, now)
    order.save()
    order.payments.filter(status="created").update(status="expired", status_detail="expired", date_last_updated=now)
    return True


def _parse_paid_amount(value) -> Decimal:
    if not isinstance(value, str):
        raise orders_error(400, "property_type", "paid_amount must be a string.", ["$.paid_amount"])
    try:
        amount = Decimal(value) if len(value) <= 20 else None
        exact = amount is not None and amount.is_finite() and amount == amount.quantize(shapes.TWO_PLACES)
    except InvalidOperation:
        amount, exact = None, False
    if not exact or amount <= 0:
        raise orders_error(
            400, "property_value", "paid_amount must be a positive amount like 25.90.", ["$.paid_amount"]
        )
    return amount.quantize(shapes.TWO_PLACES)


def simulate(
    order_id: str,
    outcome: str,
    *,
    duplicates: int = 0,
    delay_s: float = 0,
    paid_amount: str | Decimal | None = None,
    notify: bool = True,
    signature_ts: str = "ms",
) -> dict:
    """Settle an unpaid order as Mercado Pago would, and notify (after commit) unless `notify` is False.

    approved: order processed/accredited, its transaction processed/accredited with `paid_amount` (default:
              the order's total; another value rehearses a wrong amount), notification order.processed.
    rejected: order failed/failed, transaction failed/rejected_by_issuer, notification order.failed.
    expired:  order and transaction expired/expired, notification order.expired.

    Returns the order as GET /v1/orders/{id} shows it. Raises ApiError (400 bad input, 404 unknown order,
    409 the order is no longer payable).
    """
    if outcome not in OUTCOMES:
        raise orders_error(400, "property_value", f"outcome must be one of {', '.join(OUTCOMES)}.", ["$.outcome"])
    if isinstance(duplicates, bool) or not isinstance(duplicates, int) or not 0 <= duplicates <= MAX_DUPLICATES:
        raise orders_error(400, "property_value", f"duplicates must be 0..{MAX_DUPLICATES}.", ["$.duplicates"])
    if isinstance(delay_s, bool) or not isinstance(delay_s, int | float) or not 0 <= delay_s <= MAX_DELAY_S:
        raise orders_error(400, "property_value", f"delay_s must be 0..{MAX_DELAY_S} seconds.", ["$.delay_s"])
    if signature_ts not in ("s", "ms"):
        raise orders_error(400, "property_value", "signature_ts must be 's' or 'ms'.", ["$.signature_ts"])
    if isinstance(paid_amount, Decimal):
        paid_amount = str(paid_amount)
    amount = _parse_paid_amount(paid_amount) if paid_amount is not None else None

    with transaction.atomic():
        order = lock_order(order_id)
        if expire_if_due(order) and outcome == "expired":
            # Its time was up already and nobody had looked: this is the moment it expires, so notify it.
            if notify:
                notifications.queue_order_notification(
                    order, "order.expired", duplicates=duplicates, delay_s=delay_s, signature_ts=signature_ts
                )
            return shapes.order_json(order)
        if order.status != "created":
            raise orders_error(
                409, "invalid_order_status", f"The order is {order.status}; only a created order can be settled."
            )
        payment = order.payments.select_for_update().get()
        now = timezone.now()
        if outcome == "approved":
            order.status, order.status_detail = "processed", "accredited"
            payment.status, payment.status_detail = "processed", "accredited"
            payment.paid_amount = amount if amount is not None else payment.amount
            payment.date_approved = now
            action = "order.processed"
        elif outcome == "rejected":
            order.status = order.status_detail = "failed"
            payment.status, payment.status_detail = "failed", "rejected_by_issuer"
            action = "order.failed"
        else:
            order.status = order.status_detail = "expired"
            payment.status = payment.status_detail = "expired"
            action = "order.expired"
        if outcome in ("approved", "rejected"):
            # The buyer's attempt is a payment in the Payments API: it gets its numeric id.
            payment.reference_id = shapes.new_numeric_id()
            payment.payment_method = dict(shapes.PAYMENT_METHOD)
            payment.date_created = now
        payment.date_last_updated = now
        payment.save()
        touch(order, now)
        order.save()
        if notify:
            notifications.queue_order_notification(
                order, action, duplicates=duplicates, delay_s=delay_s, signature_ts=signature_ts
            )
        return shapes.order_json(order)


def confirm_refunds(order_id: str) -> None:
    """Mercado Pago answers a refund request with the refund "processing" and confirms it afterwards; the
    simulator confirms right after the request's transaction commits: refunds become "processed", the
    transaction and the order become refunded (all of it) or processed/partially_refunded, and
    order.refunded is sent."""
    try:
        with transaction.atomic():
            order = SimOrder.objects.select_for_update().get(pk=order_id)
            pending = list(SimRefund.objects.filter(payment__order=order, status="processing"))
            if not pending:
                return
            now = timezone.now()
            SimRefund.objects.filter(pk__in=[r.pk for r in pending]).update(status="processed")
            for payment in SimPayment.objects.filter(order=order, paid_amount__isnull=False):
                refunded = sum((r.amount for r in payment.refunds.filter(status="processed")), Decimal("0"))
                if not refunded:
                    continue
                if refunded >= payment.paid_amount:
                    payment.status = payment.status_detail = "refunded"
                else:
                    payment.status, payment.status_detail = "processed", "partially_refunded"
                payment.date_last_updated = now
                payment.save()
            if all(p.status == "refunded" for p in order.payments.all()):
                order.status = order.status_detail = "refunded"
            else:
                order.status, order.status_detail = "processed", "partially_refunded"
            touch(order, now)
            order.save()
            notifications.queue_order_notification(order, "order.refunded")
    except Exception:  # runs after the caller's commit: nobody could handle an error; the refund stays processing
        logger.exception("mp-simulator: could not confirm the refunds of %s", order_id)


__all__ = ["OUTCOMES", "ApiError", "confirm_refunds", "expire_if_due", "lock_order", "simulate"]
