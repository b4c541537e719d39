"""The review queue: payments a person must look at (a wrong amount, a second payment, a chargeback...).

Sync reads the payment's order from Mercado Pago and applies it; approve sends a flagged payment's order to
the kitchen only when Mercado Pago confirms exactly the right money; resolve takes it off the queue with a
comment saying what was done.
"""

from django.db import transaction
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext, gettext_noop

from kiosk.problems import DomainError
from orders import services as order_services
from orders.models import Order
from payments.gateway import gateway
from payments.models import Payment, PaymentEvent, Refund
from payments.services.apply import (
    cancel_at_provider,
    give_up_other_qrs,
    paid_by,
    payment_apply_provider_order,
    payment_record_chargeback,
)
from payments.services.ledger import move_status, note, record_event
from payments.transitions import interpret_order

Status = Payment.Status
Event = PaymentEvent.Type


class ReviewNotPossible(DomainError):
    status = 409
    code = "review_not_possible"


def payment_sync(*, payment_id) -> Payment:
    """Fetches the payment's Mercado Pago order and applies it (the admin's "Sync with Mercado Pago"); with
    the buyer's Payments API id known, also reads that payment, which is where a chargeback shows."""
    payment = Payment.objects.get(pk=payment_id)
    if not payment.provider_order_id:
        raise ReviewNotPossible(gettext("Payment %(payment)s has no Mercado Pago order yet.") % {"payment": payment.pk})
    mp, source = gateway(), note(gettext_noop("manual sync"))
    payment = payment_apply_provider_order(mp_order=mp.get_order(payment.provider_order_id), source=source)
    if payment is not None and payment.provider_payment_reference:
        payment_record_chargeback(mp_payment=mp.get_payment(payment.provider_payment_reference), source=source)
    return Payment.objects.get(pk=payment_id)


def payment_review_approve(*, payment_id, actor: str, comment: str = "") -> Payment:
    """Sends a flagged payment's order to the kitchen, only when Mercado Pago confirms the money is there,
    untouched, and the amounts match to the cent, and the order is still waiting for exactly this money."""
    payment = Payment.objects.get(pk=payment_id)
    if not payment.provider_order_id:
        raise ReviewNotPossible(gettext("Payment %(payment)s has no Mercado Pago order.") % {"payment": payment.pk})
    mp_order = gateway().get_order(payment.provider_order_id)
    state = interpret_order(mp_order)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=payment.order_id)
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        problems = []
        if not state.money_in or state.mentions_refunds or state.refunds or state.chargebacks:
            problems.append(
                gettext("Mercado Pago says the order is '%(status)s/%(detail)s', not paid and untouched")
                % {"status": mp_order.get("status"), "detail": mp_order.get("status_detail")}
            )
        if state.paid_amount != order.total or payment.amount != order.total:
            problems.append(
                gettext("paid %(paid)s, order total %(total)s")
                % {"paid": number_format(state.paid_amount, 2), "total": number_format(order.total, 2)}
            )
        if order.status != Order.Status.AWAITING_PAYMENT:
            problems.append(
                gettext("order #%(number)s is '%(status)s'")
                % {"number": order.number, "status": order.get_status_display()}
            )
        if Payment.objects.filter(settles=order).exclude(pk=payment.pk).exists():
            problems.append(gettext("another payment already paid this order"))
        if payment.refunds.exclude(status=Refund.Status.FAILED).exists():
            problems.append(gettext("money was (or is being) given back"))
        if payment.status not in (Status.PENDING, Status.APPROVED, Status.EXPIRED, Status.CANCELLED):
            problems.append(gettext("the payment is '%(status)s'") % {"status": payment.get_status_display()})
        if problems:
            raise ReviewNotPossible(gettext("Cannot approve: %(problems)s.") % {"problems": "; ".join(problems)})
        payment.paid_amount, payment.paid_at = state.paid_amount, payment.paid_at or timezone.now()
        approved = note(gettext_noop("approved in review"))
        move_status(payment, Status.APPROVED, payload=mp_order, message=approved, actor=actor)
        payment.settles = order
        payment.needs_review = False
        payment.save()
        order_services.order_mark_paid(order_id=order.pk, method="mercadopago_qr", payment=payment)
        others = give_up_other_qrs(order, payment, message=paid_by(order, payment))
        # The system's words in the restaurant's language, the person's comment as typed.
        resolved = note(gettext_noop("Approved and sent to the kitchen. %(comment)s"), comment=comment.strip())
        record_event(payment, Event.REVIEW_RESOLVED, message=resolved, actor=actor)
    cancel_at_provider(others)
    return payment


def payment_review_resolve(*, payment_id, actor: str, comment: str) -> Payment:
    """Takes a payment off the review queue with a comment saying what was done about it."""
    if not comment or not comment.strip():
        raise ReviewNotPossible(gettext("Say what was done: a comment is required."))
    with transaction.atomic():
        Order.objects.select_for_update().filter(payments=payment_id).first()  # order first, then payment
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        payment.needs_review = False
        payment.save(update_fields=["needs_review", "updated_at"])
        record_event(payment, Event.REVIEW_RESOLVED, message=comment.strip(), actor=actor)
    return payment
