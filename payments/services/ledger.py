"""The primitives every payment service writes with: a ledger line, a status move, a review flag.

Call them with the payment row locked (`select_for_update`) inside the caller's transaction.
"""

import logging

from django.db import IntegrityError, transaction

from kiosk.events.services import emit, payment_data
from orders import services as order_services
from orders.models import Order
from payments.models import Payment, PaymentEvent
from payments.transitions import can_move, status_after_refunds

logger = logging.getLogger("payments")
Status = Payment.Status
Event = PaymentEvent.Type


# Ledger lines that are also domain events for subscribers (kiosk/events); status moves are in move_status.
PUBLISHED = {
    Event.REFUND_REQUESTED: "payment.refund_requested",
    Event.REFUND_SUCCEEDED: "payment.refund_succeeded",
    Event.REFUND_FAILED: "payment.refund_failed",
}
PUBLISHED_STATUSES = {
    Status.APPROVED,
    Status.REJECTED,
    Status.EXPIRED,
    Status.CANCELLED,
    Status.PARTIALLY_REFUNDED,
    Status.REFUNDED,
    Status.CHARGED_BACK,
}


def publish(payment: Payment, event_type: str, **extra) -> None:
    """The domain event of a payment change (`payment.approved`...), in the same transaction."""
    emit(event_type, order=payment.order, payment=payment, data={**payment_data(payment), **extra})


def record_event(payment: Payment, type_: str, *, actor: str = "system", **fields) -> PaymentEvent | None:
    """Appends to the ledger. A fact Mercado Pago already reported (same provider_reference) is recorded once."""
    try:
        with transaction.atomic():
            line = PaymentEvent.objects.create(payment=payment, type=type_, actor=actor, **fields)
    except IntegrityError:
        if not fields.get("provider_reference"):
            raise
        return None
    if type_ in PUBLISHED:
        publish(
            payment,
            PUBLISHED[type_],
            refund={"amount": fields.get("amount"), "message": fields.get("message", ""), "by": actor},
        )
    return line


def move_status(payment: Payment, target: str, *, payload=None, message: str = "", actor: str = "system") -> bool:
    """Moves the payment to `target` if the transition table allows it (saved by the caller). Returns
    whether it moved: a late or repeated report of an older state changes nothing."""
    if not can_move(payment.status, target):
        return False
    record_event(
        payment,
        Event.STATUS_CHANGED,
        from_status=payment.status,
        to_status=target,
        payload=payload,
        message=message,
        actor=actor,
    )
    previous, payment.status = payment.status, target
    if target in PUBLISHED_STATUSES:
        publish(payment, f"payment.{target}", previous_status=previous)
    return True


def flag_for_review(payment: Payment, reason: str, *, payload=None) -> None:
    payment.needs_review = True
    payment.review_reason = f"{payment.review_reason}\n{reason}".strip()
    record_event(payment, Event.REVIEW_FLAGGED, message=reason, payload=payload)
    publish(payment, "payment.under_review", reason=reason)
    logger.warning("payment %s flagged for review: %s", payment.pk, reason)


def follow_confirmed_refunds(order: Order, payment: Payment, *, payload=None, message: str = "") -> None:
    """Sets `partially_refunded` / `refunded` from the refunds Mercado Pago confirmed (the ledger), and takes
    an order refunded in full before it was handed over out of the kitchen. Both rows locked; saved here."""
    if payment.status in (Status.APPROVED, Status.PARTIALLY_REFUNDED):
        target = status_after_refunds(paid=payment.paid_amount, refunded=payment.refunded_amount())
        move_status(payment, target, payload=payload, message=message)
    payment.save()
    in_kitchen = (Order.Status.RECEIVED, Order.Status.IN_PREPARATION, Order.Status.READY)
    if payment.status == Status.REFUNDED and payment.settles_id == order.pk and order.status in in_kitchen:
        order_services.order_withdraw_refunded(order_id=order.pk)
        order.status = Order.Status.CANCELLED
        record_event(
            payment, Event.STATUS_CHANGED, message=f"order #{order.number} withdrawn from the kitchen (refunded)"
        )
