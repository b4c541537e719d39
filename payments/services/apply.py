"""Applying what Mercado Pago says about one of its orders: this is where a notification takes effect.

Notifications, `reconcile_payments`, the admin's "Sync" and cancellations all end here. Mercado Pago is the
source of truth (a notification is only a reason to read the order); applying is idempotent and never
moves a payment backwards, so late, duplicated and out-of-order reports change nothing.

The money rules, when Mercado Pago says the money came in:
- for an order still awaiting payment, to the cent: it pays the order, even through a QR our clock had
  already given up; the order's other open QRs are cancelled (here and at Mercado Pago);
- for an order that was cancelled, or is already paid (by another QR, or at the counter): flagged and
  refunded in full automatically;
- a wrong amount: flagged for review and held; the order never reaches the kitchen.
"""

import json
import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from kiosk.jobs import enqueue
from orders import services as order_services
from orders.models import Order
from payments import tasks
from payments.gateway import GatewayError, GatewayRejected, gateway
from payments.models import Payment, PaymentEvent
from payments.selectors import find_payment
from payments.services import refunds
from payments.services.ledger import Note, english, flag_for_review, lowered, move_status, note, record_event
from payments.transitions import MONEY_TAKEN, ProviderState, interpret_order

logger = logging.getLogger("payments")
Status = Payment.Status
Event = PaymentEvent.Type


def payment_apply_provider_order(*, mp_order: dict, source: str | Note) -> Payment | None:
    """Applies Mercado Pago's current view of one of its orders. Returns our payment, or None if not ours.
    `source` says where it came from, for the ledger: `note(gettext_noop("reconcile"))`."""
    found = find_payment(mp_order)
    if found is None:
        logger.info("Mercado Pago order %s is not one of ours (%s)", mp_order.get("id"), english(source))
        return None
    state = interpret_order(mp_order)
    refund_it, cancel_ids = False, []
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=found.order_id)
        payment = Payment.objects.select_for_update().get(pk=found.pk)
        payment.provider_order_id = payment.provider_order_id or str(mp_order.get("id") or "") or None
        payment.provider_payment_id = payment.provider_payment_id or state.payment_id[:64]
        payment.provider_payment_reference = payment.provider_payment_reference or state.payment_reference[:64]
        payment.provider_status = str(mp_order.get("status") or "")[:40]
        payment.provider_status_detail = str(mp_order.get("status_detail") or "")[:60]

        if state.money_in and payment.status not in MONEY_TAKEN:
            refund_it, cancel_ids = _money_received(order, payment, state, mp_order, source)
        elif not state.money_in and state.status != Status.PENDING:
            move_status(payment, state.status, payload=mp_order, message=_from(source))
        payment.save()
        if payment.status in MONEY_TAKEN:
            refunds.apply_provider_refunds(order, payment, state, payload=mp_order)
            for chargeback in state.chargebacks:
                _chargeback(payment, chargeback.id, chargeback.status, mp_order, source)
            payment.save()
        # Mercado Pago is called by the worker, after the commit (never inside a transaction or while a lock
        # is held); enqueued here, the tasks exist exactly when this change was committed.
        if cancel_ids:
            enqueue(tasks.cancel_at_provider, cancel_ids)
        if refund_it:
            enqueue(tasks.refund_automatically, payment.pk)
    return payment


def _from(source: str | Note) -> Note:
    return note(gettext_noop("from %(source)s"), source=source)


def _money_received(
    order: Order, payment: Payment, state: ProviderState, mp_order: dict, source: str | Note
) -> tuple[bool, list[int]]:
    """The money is in: does it pay the order? Returns (refund it automatically, payments to cancel)."""
    previous = payment.status
    payment.paid_amount = state.paid_amount  # before the move: payment.approved carries it
    payment.paid_at = timezone.now()
    move_status(payment, Status.APPROVED, payload=mp_order, message=_from(source))
    settled_by = Payment.objects.filter(settles=order).exclude(pk=payment.pk).first()
    if order.status == Order.Status.CANCELLED:
        flag_for_review(
            payment,
            note(
                gettext_noop(
                    "Paid after order #%(number)s was cancelled (payment %(status)s): refunding automatically."
                ),
                number=order.number,
                status=lowered(Payment.Status(previous).label),
            ),
            payload=mp_order,
        )
        return True, []
    if settled_by is not None or order.status != Order.Status.AWAITING_PAYMENT:
        if settled_by is None:
            # Translators: after "already paid by" (Portuguese: "já pago pela equipe, fora do Mercado Pago").
            by = note(gettext_noop("staff, outside Mercado Pago"))
        elif settled_by.provider == Payment.Provider.COUNTER:
            by = note(
                # Translators: after "already paid by" (Portuguese: "já pago com dinheiro no caixa (pagamento 12)").
                gettext_noop("%(method)s at the counter (payment %(payment)s)"),
                method=lowered(Payment.Method(settled_by.method).label),
                payment=settled_by.pk,
            )
        else:
            # Translators: after "already paid by" (Portuguese: "já pago pelo pagamento 12").
            by = note(gettext_noop("payment %(payment)s"), payment=settled_by.pk)
        flag_for_review(
            payment,
            note(
                gettext_noop("Second payment for order #%(number)s, already paid by %(by)s: refunding automatically."),
                number=order.number,
                by=by,
            ),
            payload=mp_order,
        )
        return True, []
    if state.paid_amount != payment.amount or payment.amount != order.total:
        flag_for_review(
            payment,
            note(
                gettext_noop(
                    "Amount mismatch: Mercado Pago says %(paid)s was paid; order #%(number)s totals %(total)s and the "
                    "QR asked for %(asked)s. Held for a person to decide."
                ),
                paid=state.paid_amount,
                number=order.number,
                total=order.total,
                asked=payment.amount,
            ),
            payload=mp_order,
        )
        # Money is held for this order now: no other QR of it may still take the customer's money.
        held = note(gettext_noop("money of payment %(payment)s held for review"), payment=payment.pk)
        return False, give_up_other_qrs(order, payment, message=held)
    payment.settles = order
    order_services.order_mark_paid(order_id=order.pk, method="mercadopago_qr", payment=payment)
    if previous != Status.PENDING:
        record_event(
            payment,
            Event.STATUS_CHANGED,
            message=note(
                gettext_noop("a QR given up (%(status)s) paid order #%(number)s"),
                status=lowered(Payment.Status(previous).label),
                number=order.number,
            ),
        )
    logger.info("payment %s approved: order #%s to the kitchen", payment.pk, order.number)
    return False, give_up_other_qrs(order, payment, message=paid_by(order, payment))


def paid_by(order: Order, payment: Payment) -> Note:
    """The ledger line of the order's other QRs given up when `payment` paid it."""
    return note(gettext_noop("order #%(number)s paid by payment %(payment)s"), number=order.number, payment=payment.pk)


def give_up_other_qrs(order: Order, payment: Payment, *, message: str | Note) -> list[int]:
    """Cancels the order's other pending payments (rows locked here; the order is locked by the caller).
    Returns those with a QR to cancel at Mercado Pago after the commit."""
    others = list(
        Payment.objects.select_for_update()
        .filter(order=order, status=Status.PENDING)
        .exclude(pk=payment.pk)
        .order_by("pk")
    )
    for other in others:
        move_status(other, Status.CANCELLED, message=message)
        other.save()
    return [other.pk for other in others if other.provider_order_id]


def _chargeback(payment: Payment, reference: str, status: str, payload, source: str | Note) -> None:
    """A chargeback Mercado Pago reports (the order's `transactions.chargebacks`, or the Payments API's
    `charged_back`): the payment becomes `charged_back` (never `refunded`) and goes to review, because the
    dispute is answered in Mercado Pago's panel. Both sources describe the same dispute, so the ledger has one
    line per phase of it (opened, closed), whichever reported it first."""
    phase = "closed" if status == "closed" else "opened"
    reported = status or note(gettext_noop("reported"))  # Mercado Pago's own word for it, else ours
    if phase == "closed":
        line = note(
            gettext_noop("Chargeback %(reference)s closed (%(status)s), from %(source)s"),
            reference=reference,
            status=reported,
            source=source,
        )
    else:
        line = note(
            gettext_noop("Chargeback %(reference)s opened (%(status)s), from %(source)s"),
            reference=reference,
            status=reported,
            source=source,
        )
    recorded = record_event(
        payment,
        Event.CHARGEBACK,
        message=line,
        payload=payload,
        provider_reference=f"chargeback-{phase}",
        actor="mercadopago",
    )
    if recorded is None:
        return  # already known
    move_status(
        payment,
        Status.CHARGED_BACK,
        payload=payload,
        message=note(gettext_noop("chargeback %(reference)s"), reference=reference),
    )
    flag_for_review(
        payment,
        note(
            gettext_noop("Chargeback %(reference)s (%(status)s): answer the dispute in Mercado Pago's panel."),
            reference=reference,
            status=reported,
        ),
    )


def payment_record_chargeback(*, mp_payment: dict, source: str | Note) -> Payment | None:
    """A Payments API payment that says `charged_back`: applied to our payment it belongs to."""
    reference = str(mp_payment.get("id") or "")
    lookup = Payment.objects.filter(provider_payment_reference=reference) if reference else Payment.objects.none()
    found = lookup.first() or Payment.objects.filter(reference=str(mp_payment.get("external_reference") or "")).first()
    if found is None or str(mp_payment.get("status") or "").lower() != "charged_back":
        return found
    with transaction.atomic():
        Order.objects.select_for_update().get(pk=found.order_id)
        payment = Payment.objects.select_for_update().get(pk=found.pk)
        if payment.status in MONEY_TAKEN:
            _chargeback(payment, f"payment-{reference}", "charged_back", mp_payment, source)
            payment.save()
    return payment


def payment_note_notification(*, payment: Payment, delivery_id: int, topic: str, action: str, body: str) -> None:
    """The ledger line for a notification that concerned this payment (once per delivery)."""
    try:
        payload = json.loads(body) if body else None
    except (ValueError, RecursionError):
        payload = {"raw": body[:2000]}
    record_event(
        payment,
        Event.NOTIFICATION_RECEIVED,
        message=note(
            gettext_noop("%(topic)s %(action)s (delivery %(delivery)s)"),
            topic=topic,
            action=action,
            delivery=delivery_id,
        ),
        payload=payload,
        provider_reference=f"delivery-{delivery_id}",
        actor="mercadopago",
    )


def cancel_at_provider(payment_ids: list[int]) -> None:
    """Best effort: a QR we gave up on is cancelled at Mercado Pago; if it was paid meanwhile, the fetched
    state is applied (and the money rules decide). Failures are left to `reconcile_payments`."""
    for payment in Payment.objects.filter(pk__in=payment_ids, provider_order_id__isnull=False).order_by("pk"):
        record_event(payment, Event.CANCEL_REQUESTED)
        try:
            mp_order = gateway().cancel_order(payment.provider_order_id, idempotency_key=f"{payment.reference}-cancel")
        except GatewayRejected as exc:
            record_event(payment, Event.CANCEL_FAILED, message=exc.message, payload=exc.body)
            try:
                mp_order = gateway().get_order(payment.provider_order_id)
            except GatewayError:
                continue
        except GatewayError as exc:
            record_event(payment, Event.CANCEL_FAILED, message=exc.message, payload=exc.body)
            continue
        payment_apply_provider_order(mp_order=mp_order, source=note(gettext_noop("cancel")))
