"""The primitives every payment service writes with: a ledger line, a status move, a review flag, and the words
the system writes for people (`note`).

Call them with the payment row locked (`select_for_update`) inside the caller's transaction.
"""

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import translation
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_noop

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


# --- Words for people ----------------------------------------------------------------------------


def in_house_language(template: str, /, **params) -> str:
    """`template`, an English message marked for makemessages (`gettext_noop`), with its named %-parameters, in
    the restaurant's language (settings.LANGUAGE_CODE) whatever language the request or the worker has active: a
    ledger line reads the same whether the worker, a kiosk or an English-speaking manager wrote it. Parameters
    (ids, amounts, Mercado Pago's own texts and codes, what a person typed) are put in as they are."""
    with translation.override(settings.LANGUAGE_CODE):
        return gettext(template) % {
            name: str(value) if isinstance(value, Note) else value for name, value in params.items()
        }


class Note:
    """Words the system writes for people (a ledger line, a review reason): stored in the restaurant's language
    (`str(note)`, see in_house_language); `english` is for the logs and for the domain events, whose payloads
    have always carried the English."""

    __slots__ = ("params", "template")

    def __init__(self, template: str, params: dict):
        self.template, self.params = template, params

    def __str__(self) -> str:
        return in_house_language(self.template, **self.params)

    def __repr__(self) -> str:
        return f"Note({self.english!r})"

    @property
    def english(self) -> str:
        with translation.override("en"):  # a lazy label among the parameters in English too
            return self.template % {name: english(value) for name, value in self.params.items()}


def note(template: str, /, **params) -> Note:
    """A Note: `note(gettext_noop("refund %(refund)s confirmed by Mercado Pago"), refund=refund.pk)`."""
    return Note(template, params)


# A label (a status, a method: lazy) with a small first letter, to go inside a sentence, in the language the
# note is written in: "Cancelled" -> "cancelled", "Cancelado" -> "cancelado".
lowered = lazy(lambda label: str(label)[:1].lower() + str(label)[1:], str)


def english(text) -> str:
    """The English of a Note; any other text (a person's words, Mercado Pago's) as it is."""
    return text.english if isinstance(text, Note) else text


# --- The ledger -----------------------------------------------------------------------------------


def publish(payment: Payment, event_type: str, **extra) -> None:
    """The domain event of a payment change (`payment.approved`...), in the same transaction."""
    emit(event_type, order=payment.order, payment=payment, data={**payment_data(payment), **extra})


def record_event(
    payment: Payment, type_: str, *, actor: str = "system", message: str | Note = "", **fields
) -> PaymentEvent | None:
    """Appends to the ledger (a Note's message in the restaurant's language). A fact Mercado Pago already reported
    (same provider_reference) is recorded once."""
    try:
        with transaction.atomic():
            text = str(message).strip() if isinstance(message, Note) else message
            line = PaymentEvent.objects.create(payment=payment, type=type_, actor=actor, message=text, **fields)
    except IntegrityError:
        if not fields.get("provider_reference"):
            raise
        return None
    if type_ in PUBLISHED:
        publish(
            payment,
            PUBLISHED[type_],
            refund={"amount": fields.get("amount"), "message": english(message), "by": actor},
        )
    return line


def move_status(
    payment: Payment, target: str, *, payload=None, message: str | Note = "", actor: str = "system"
) -> bool:
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


def flag_for_review(payment: Payment, reason: str | Note, *, payload=None) -> None:
    """Puts the payment on the review queue: its reason for people in the restaurant's language, in English for the
    log and the `payment.under_review` event."""
    payment.needs_review = True
    payment.review_reason = f"{payment.review_reason}\n{reason}".strip()
    record_event(payment, Event.REVIEW_FLAGGED, message=reason, payload=payload)
    publish(payment, "payment.under_review", reason=english(reason))
    logger.warning("payment %s flagged for review: %s", payment.pk, english(reason))


def follow_confirmed_refunds(order: Order, payment: Payment, *, payload=None, message: str | Note = "") -> None:
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
            payment,
            Event.STATUS_CHANGED,
            message=note(gettext_noop("order #%(number)s withdrawn from the kitchen (refunded)"), number=order.number),
        )
