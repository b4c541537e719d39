"""Emitting domain events: where `order.placed`, `payment.approved`, `order.paid`... are written.

`emit` is called by the service functions (orders/services.py, payments/services/), inside the transaction
that makes the change, never from signals or views. In that transaction it writes the event, one delivery
per endpoint that wants it, and the task that sends each: the transactional outbox. A rollback takes all of
it away; a commit makes all of it durable, whatever happens to the process afterwards.

Each order's events are numbered 1, 2, 3... (`sequence`) with a counter on the order row, so the update that
numbers an event also locks the order: services lock the order first, then its payments.
"""

import logging
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import F, prefetch_related_objects
from django.utils.translation import gettext_noop

from kiosk.events.models import Event, EventDelivery, WebhookEndpoint
from kiosk.jobs import enqueue
from kiosk.middleware import current_cause, current_request_id

logger = logging.getLogger("kiosk.events")

# What each event type means (English; the back office shows it translated).
EVENT_TYPES = {
    "order.placed": gettext_noop("A kiosk placed an order (awaiting payment; stock reserved)."),
    "order.paid": gettext_noop("The order is paid (by Mercado Pago or at the counter): what a fiscal receipt needs."),
    "order.status_changed": gettext_noop("The order moved: received, in_preparation, ready, completed, cancelled."),
    "order.cancelled": gettext_noop(
        "The order was cancelled (customer, expiry, staff, or refunded in full before delivery)."
    ),
    "payment.approved": gettext_noop("The money came in: Mercado Pago says so, or a cashier took it at the counter."),
    "payment.rejected": gettext_noop("Mercado Pago refused the payment."),
    "payment.expired": gettext_noop("The QR expired unpaid."),
    "payment.cancelled": gettext_noop("The QR was given up (order cancelled, paid otherwise, or replaced)."),
    "payment.under_review": gettext_noop(
        "Something about the payment needs a person (amount mismatch, late money...)."
    ),
    "payment.refund_requested": gettext_noop("A refund was asked of Mercado Pago (it confirms later)."),
    "payment.refund_succeeded": gettext_noop("Mercado Pago confirmed a refund."),
    "payment.refund_failed": gettext_noop("Mercado Pago reports a refund failed; its amount is refundable again."),
    "payment.partially_refunded": gettext_noop("Confirmed refunds now cover part of the payment."),
    "payment.refunded": gettext_noop("Confirmed refunds now cover the whole payment."),
    "payment.charged_back": gettext_noop("The buyer disputed the payment with the card issuer."),
}


class EventOutsideTransaction(RuntimeError):
    """An event must be written in the transaction of the change it describes."""


def _plain(value):
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def emit(event_type: str, *, order, data: dict, payment=None, first: bool = False) -> Event:
    """Writes one event of `order` (and its deliveries and their tasks) in the caller's transaction.
    `first`: the order was created in this transaction with `event_sequence=1`, and this is that event."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    if not any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        raise EventOutsideTransaction(f"{event_type} must be emitted inside the transaction of its change")
    if first:
        sequence = 1
    else:
        order_model = type(order)
        order_model.objects.filter(pk=order.pk).update(event_sequence=F("event_sequence") + 1)
        sequence = order_model.objects.values_list("event_sequence", flat=True).get(pk=order.pk)
    correlation = current_request_id.get()
    event = Event.objects.create(
        type=event_type,
        aggregate_type="payment" if payment is not None else "order",
        aggregate_id=str(payment.pk if payment is not None else order.pk),
        order_id=order.pk,
        sequence=sequence,
        correlation_id="" if correlation == "-" else correlation[:100],
        causation_id=current_cause.get() or ("" if correlation == "-" else correlation[:100]),
        data=_plain(data),
    )
    current_cause.set(str(event.event_id))
    _write_deliveries(event)
    return event


def _write_deliveries(event: Event) -> None:
    """One delivery, and its task, per active endpoint that wants the event."""
    from kiosk.events import tasks

    for _ in range(3):
        endpoints = [e for e in WebhookEndpoint.objects.filter(active=True) if e.wants(event.type)]
        if not endpoints:
            return
        try:
            with transaction.atomic():  # a savepoint: an endpoint deleted meanwhile must not fail the change
                EventDelivery.objects.bulk_create(
                    [
                        EventDelivery(event=event, endpoint=e, order_id=event.order_id, sequence=event.sequence)
                        for e in endpoints
                    ]
                )
            break
        except IntegrityError:
            continue  # read the endpoints again
    else:
        logger.error("event %s: endpoints kept changing; its deliveries were not written", event.event_id)
        return
    # (MySQL's bulk insert returns no ids: read them back.)
    for delivery_id in EventDelivery.objects.filter(event=event).values_list("pk", flat=True):
        enqueue(tasks.deliver_event, delivery_id)


# --- What the events carry ------------------------------------------------------------------------


def order_data(order) -> dict:
    return {
        "order_id": str(order.pk),
        "number": order.number,
        "business_date": order.business_date.isoformat(),
        "status": order.status,
        "total": order.total,
        "store": {"slug": order.store.slug, "name": order.store.name},
        "dining": order.dining,
        "terminal": {"id": order.terminal_id, "store": order.store.name, "name": order.terminal.name},
    }


def order_items(order) -> list[dict]:
    """The order's lines, each with its options and combo parts as chosen (prices per unit, at order time)."""
    from orders.selectors import item_options

    # Reads only what is not already in memory (an order just placed has its lines and choices there).
    prefetch_related_objects([order], "items__options")
    return [
        {
            "product_id": item.product_id,
            "name": item.product_name,
            "quantity": item.quantity,
            "unit_price": item.unit_price,
            "line_total": item.line_total,
            "note": item.note,
            "options": item_options(item),
        }
        for item in order.items.all()
    ]


def _mercadopago_ids(payment) -> dict:
    return {"order_id": payment.provider_order_id or None, "payment_id": payment.provider_payment_id or None}


def payment_data(payment) -> dict:
    return {
        "payment_id": payment.pk,
        "reference": payment.reference,
        "order_id": str(payment.order_id),
        "status": payment.status,
        "method": payment.method,
        "amount": payment.amount,
        "paid_amount": payment.paid_amount,
        "mercadopago": _mercadopago_ids(payment),
    }


def emit_order_paid(order, *, method: str, payment=None) -> Event:
    """`order.paid`, with what a fiscal-receipt issuer needs. The CPF only when the customer asked for it on
    the receipt ("CPF na nota"); e-mail and name never."""
    customer = order.customer if order.cpf_on_receipt and order.customer_id else None
    data = {
        **order_data(order),
        "status": "received",
        "items": order_items(order),
        "totals": {"items": sum((i.line_total for i in order.items.all()), Decimal("0.00")), "total": order.total},
        "payment": {
            "method": method,
            **(
                {
                    "payment_id": payment.pk,
                    "reference": payment.reference,
                    "amount": payment.paid_amount,
                    "mercadopago": _mercadopago_ids(payment),
                }
                if payment is not None
                else {"amount": order.total}
            ),
        },
        "customer": {"cpf": customer.cpf} if customer else None,
    }
    return emit("order.paid", order=order, data=data)
