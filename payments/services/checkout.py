"""A QR for an order to be paid with, and taking QRs away: checkout, cancelling an unpaid order, money taken
at the counter, stale orders.

Mercado Pago is never called inside a transaction or while a row lock is held: lock, decide, commit, call,
lock again, record (the gateway refuses to run inside an atomic block).
"""

import logging
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import number_format
from django.utils.translation import gettext, gettext_noop

from kiosk.jobs import enqueue
from kiosk.problems import Conflict, DomainError, Invalid
from orders import services as order_services
from orders.models import Order
from payments import tasks
from payments.gateway import AnswerMismatch, GatewayError, gateway
from payments.models import Payment, PaymentEvent
from payments.selectors import money_held_for_review
from payments.services.apply import payment_apply_provider_order
from payments.services.ledger import Note, lowered, move_status, note, record_event
from payments.transitions import MONEY_HELD, MONEY_TAKEN

logger = logging.getLogger("payments")
Status = Payment.Status
Event = PaymentEvent.Type


class OrderNotPayable(Conflict):
    code = "order_not_payable"


class PaymentUnderReview(Conflict):
    code = "payment_under_review"


class TerminalNotReady(DomainError):
    status = 409
    code = "terminal_not_ready"


# --- Checkout -------------------------------------------------------------------------------------


def payment_checkout(*, order_id) -> tuple[Payment, bool]:
    """Gives the order a payable QR: the current one while it is valid (created=False), else a new one.

    Raises GatewayError when Mercado Pago cannot be reached or refuses; the payment row then records why,
    and the next checkout retries the same QR creation (same idempotency key, so never two QR orders).
    Raises OrderNotPayable when the order was cancelled or paid while Mercado Pago was answering: the new
    QR is then cancelled at Mercado Pago, so a cancelled order never gets a payable QR.
    """
    given_up: list[int] = []
    with transaction.atomic():
        order = Order.objects.select_for_update().select_related("terminal").get(pk=order_id)
        if order.status != Order.Status.AWAITING_PAYMENT:
            raise OrderNotPayable(
                gettext("Order #%(number)s is '%(status)s', not awaiting payment.")
                % {"number": order.number, "status": order.get_status_display()}
            )
        if money_held_for_review(order.pk):
            # Money already came for this order but did not settle it (a wrong amount): never charge again
            # before a person has looked.
            raise PaymentUnderReview(
                gettext("A payment for order #%(number)s is waiting for staff review.") % {"number": order.number}
            )
        terminal = order.terminal
        if not terminal.active or not terminal.external_pos_id:
            raise TerminalNotReady(
                gettext("Terminal '%(terminal)s' is not set up for Mercado Pago payments.")
                % {"terminal": terminal.name}
            )
        payment = order.payments.filter(status=Status.PENDING).order_by("-created_at").first()
        if payment and payment.qr_valid:
            return payment, False
        if payment and payment.provider_order_id:
            # Its QR ran out on our clock: give it up here, and at Mercado Pago once the new one exists.
            move_status(payment, Status.EXPIRED, message=note(gettext_noop("QR expired before payment (local clock)")))
            payment.save()
            given_up.append(payment.pk)
            payment = None
        if payment and payment.created_at < timezone.now() - settings.MERCADOPAGO_QR_EXPIRATION:
            move_status(
                payment, Status.EXPIRED, message=note(gettext_noop("QR creation never confirmed by Mercado Pago"))
            )
            payment.save()
            payment = None
        if payment is None:
            payment = Payment.objects.create(order=order, amount=order.total)
            record_event(
                payment,
                Event.CREATED,
                amount=payment.amount,
                message=note(gettext_noop("Checkout of order #%(number)s"), number=order.number),
            )

    try:
        mp_order = gateway().create_qr_order(
            reference=payment.reference, order=order, terminal=terminal, expiration=settings.MERCADOPAGO_QR_EXPIRATION
        )
    except GatewayError as exc:
        with transaction.atomic():
            locked = Payment.objects.select_for_update().get(pk=payment.pk)
            locked.last_error = exc.message
            record_event(locked, Event.QR_FAILED, message=exc.message, payload=exc.body)
            if isinstance(exc, AnswerMismatch):
                # A QR for the wrong amount (or none) exists at Mercado Pago: never shown, given up here and
                # cancelled there; the next checkout makes a new one with a new reference.
                locked.provider_order_id = locked.provider_order_id or exc.provider_order_id
                if move_status(
                    locked,
                    Status.CANCELLED,
                    payload=exc.body,
                    message=note(gettext_noop("Mercado Pago's QR is not the one asked for")),
                ):
                    given_up.append(locked.pk)
                locked.save()
                logger.error("payment %s: %s", locked.pk, exc.message)
            else:
                locked.save(update_fields=["last_error", "updated_at"])
        if given_up:
            enqueue(tasks.cancel_at_provider, given_up)
        raise

    refused = None
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        locked.provider_order_id = locked.provider_order_id or mp_order.get("id")
        transactions = mp_order.get("transactions") if isinstance(mp_order.get("transactions"), dict) else {}
        mp_payments = transactions.get("payments") if isinstance(transactions.get("payments"), list) else []
        if mp_payments and isinstance(mp_payments[0], dict) and not locked.provider_payment_id:
            locked.provider_payment_id = str(mp_payments[0].get("id") or "")
        locked.qr_data = (mp_order.get("type_response") or {}).get("qr_data") or ""
        # A retried creation may return an order Mercado Pago made earlier: its clock starts at its creation.
        locked.expires_at = min(_provider_time(mp_order.get("created_date")), timezone.now()) + (
            settings.MERCADOPAGO_QR_EXPIRATION
        )
        locked.provider_status = locked.provider_status or str(mp_order.get("status") or "")[:40]
        locked.last_error = ""
        record_event(locked, Event.QR_CREATED, payload=mp_order, provider_reference=locked.provider_order_id)
        paid_by_this_qr = locked.status in MONEY_TAKEN  # its notification was faster than this answer
        if not paid_by_this_qr and money_held_for_review(order.pk):
            # Money for this order arrived meanwhile (through an older QR) and waits for a person.
            move_status(
                locked,
                Status.CANCELLED,
                message=note(gettext_noop("money for the order is held for review: QR not needed")),
            )
            given_up.append(locked.pk)
            refused = PaymentUnderReview(
                gettext("A payment for order #%(number)s is waiting for staff review.") % {"number": order.number}
            )
        elif not paid_by_this_qr and (order.status != Order.Status.AWAITING_PAYMENT or locked.status != Status.PENDING):
            move_status(
                locked,
                Status.CANCELLED,
                message=note(
                    gettext_noop("order #%(number)s is '%(status)s': QR not needed"),
                    number=order.number,
                    status=lowered(Order.Status(order.status).label),
                ),
            )
            given_up.append(locked.pk)
            refused = OrderNotPayable(
                gettext("Order #%(number)s became '%(status)s' while its QR was being made; the QR was cancelled.")
                % {"number": order.number, "status": order.get_status_display()}
            )
        locked.save()
        if given_up:
            enqueue(tasks.cancel_at_provider, given_up)
    if refused is not None:
        raise refused
    return locked, True


def _provider_time(value) -> datetime:
    """A Mercado Pago timestamp (UTC when it says no zone); now when it is missing or unreadable."""
    try:
        parsed = parse_datetime(str(value or ""))
    except ValueError:
        parsed = None
    if parsed is None:
        return timezone.now()
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


# --- Taking QRs away ------------------------------------------------------------------------------


def _give_up_open_qrs(order_id, *, message: str | Note, actor: str) -> list[int]:
    """Marks the order's pending payments cancelled (rows locked). Returns those with a QR at Mercado Pago."""
    pending = list(Payment.objects.select_for_update().filter(order_id=order_id, status=Status.PENDING))
    for payment in pending:
        move_status(payment, Status.CANCELLED, message=message, actor=actor)
        payment.save()
    return [payment.pk for payment in pending if payment.provider_order_id]


def _cancel_reason(reason: str):
    """Why an order was cancelled, as the ledger says it ("cliente desistiu"); an unknown code as it is."""
    return lowered(Order.CancelReason(reason).label) if reason in Order.CancelReason.values else reason


def _held_for_review(order: Order) -> str:
    return gettext("A payment for order #%(number)s is waiting for staff review: approve it or refund it first.") % {
        "number": order.number
    }


def _refuse_while_money_is_held(order_id) -> None:
    """Money held for review belongs to this order until a person decides (approve it, or refund it):
    cancelling the order or taking the money another way first would leave it unexplained."""
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.status == Order.Status.AWAITING_PAYMENT and money_held_for_review(order.pk):
        raise PaymentUnderReview(_held_for_review(order))


def order_cancel_unpaid(*, order_id, reason: str = Order.CancelReason.CUSTOMER, actor: str = "system") -> Order:
    """Cancels an unpaid order, releases its stock, and cancels its open QR at Mercado Pago (after commit)."""
    with transaction.atomic():
        _refuse_while_money_is_held(order_id)
        order = order_services.order_cancel(order_id=order_id, reason=reason)
        cancelled = note(gettext_noop("order cancelled (%(reason)s)"), reason=_cancel_reason(reason))
        to_cancel = _give_up_open_qrs(order_id, message=cancelled, actor=actor)
        if to_cancel:
            enqueue(tasks.cancel_at_provider, to_cancel)
    return order


# --- Money taken at the counter -------------------------------------------------------------------


class CounterAmountMismatch(DomainError):
    status = 422
    code = "counter_amount_mismatch"


COUNTER_METHODS = (Payment.Method.CASH, Payment.Method.CARD_OUTSIDE)


def order_pay_at_counter(*, order_id, method: str, amount: Decimal, actor: str) -> Payment:
    """A cashier took the money at the counter: cash, or a card machine outside Mercado Pago.

    `amount` must be the order's total to the cent: what the books record is what paid the order (change
    given for cash is the cashier's business, never a figure here). Under the order's lock, for an order still
    awaiting payment: a payment (provider `counter`) that settles the order, with its ledger lines (the method,
    the amount and who took it), the order's open QRs given up (cancelled at Mercado Pago by the worker, after
    the commit: money that still comes through one is refunded automatically), and the order to the kitchen
    exactly as when Mercado Pago pays (`order_mark_paid`, which emits `order.paid`).

    Raises OrderNotPayable (already paid, or cancelled), PaymentUnderReview (money waits for staff review),
    CounterAmountMismatch, or Invalid for an unknown method. Nothing is changed then.
    """
    if method not in COUNTER_METHODS:
        raise Invalid(
            gettext("Unknown counter payment method '%(method)s'.") % {"method": method},
            errors={"method": [gettext("One of %(methods)s.") % {"methods": list(COUNTER_METHODS)}]},
        )
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status != Order.Status.AWAITING_PAYMENT:
            raise OrderNotPayable(
                gettext("Order #%(number)s is '%(status)s', not awaiting payment: there is nothing to take.")
                % {"number": order.number, "status": order.get_status_display()},
                current=order.status,
            )
        if money_held_for_review(order.pk):
            raise PaymentUnderReview(_held_for_review(order))
        if amount != order.total:
            raise CounterAmountMismatch(
                gettext(
                    "Order #%(number)s totals %(total)s; %(amount)s was entered. Record exactly the total "
                    "(change given for cash is not recorded)."
                )
                % {"number": order.number, "total": number_format(order.total, 2), "amount": number_format(amount, 2)},
                order_total=f"{order.total:.2f}",
                amount=f"{amount:.2f}",
            )
        label = Payment.Method(method).label
        payment = Payment.objects.create(
            order=order,
            provider=Payment.Provider.COUNTER,
            method=method,
            amount=order.total,
            paid_amount=order.total,
            paid_at=timezone.now(),
        )
        record_event(
            payment,
            Event.COUNTER_PAYMENT,
            amount=order.total,
            message=note(
                gettext_noop("%(method)s taken at the counter by %(actor)s for order #%(number)s"),
                method=label,
                actor=actor,
                number=order.number,
            ),
            payload={"method": method, "amount": f"{order.total:.2f}"},
            actor=actor,
        )
        move_status(
            payment,
            Status.APPROVED,
            message=note(gettext_noop("paid at the counter (%(method)s)"), method=lowered(label)),
            actor=actor,
        )
        payment.settles = order
        payment.save()
        to_cancel = _give_up_open_qrs(
            order_id,
            message=note(gettext_noop("order paid at the counter (%(method)s)"), method=lowered(label)),
            actor=actor,
        )
        order_services.order_mark_paid(order_id=order.pk, method=method, payment=payment)
        if to_cancel:
            enqueue(tasks.cancel_at_provider, to_cancel)
    logger.info("order #%s %s paid at the counter: %s %s by %s", order.number, order.pk, method, order.total, actor)
    return payment


def orders_cancel_stale(*, now=None) -> int:
    """Cancels orders left unpaid that can no longer be paid: older than ORDER_PAYMENT_TIMEOUT and with no
    QR that is still valid (its own expiry plus MERCADOPAGO_QR_GRACE) or still being made. Orders holding
    money for review are left to a person. Each order is checked again under its lock, so a checkout
    running at the same moment is never cut off."""
    now = now or timezone.now()
    candidates = (
        Order.objects.filter(status=Order.Status.AWAITING_PAYMENT, created_at__lt=now - settings.ORDER_PAYMENT_TIMEOUT)
        .exclude(pk__in=_orders_still_payable(now))
        .values_list("pk", flat=True)
    )
    cancelled = 0
    for order_id in list(candidates):
        if not _mercado_pago_agrees_unpaid(order_id):
            continue  # paid after all (a late notification), or Mercado Pago cannot tell now: not yet
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=order_id)
            if (
                order.status != Order.Status.AWAITING_PAYMENT
                or _orders_still_payable(now).filter(order_id=order_id).exists()
            ):
                continue
            order_services.order_cancel(order_id=order_id, reason=Order.CancelReason.PAYMENT_EXPIRED)
            to_cancel = _give_up_open_qrs(
                order_id,
                message=note(
                    gettext_noop("order cancelled (%(reason)s)"),
                    reason=_cancel_reason(Order.CancelReason.PAYMENT_EXPIRED),
                ),
                actor="system",
            )
            if to_cancel:
                enqueue(tasks.cancel_at_provider, to_cancel)
            cancelled += 1
    return cancelled


def _mercado_pago_agrees_unpaid(order_id) -> bool:
    """Before giving an order up, reads its QRs from Mercado Pago (outside any transaction) and applies what it
    says: a QR paid in time whose notification is late pays the order now instead of being refunded later."""
    qrs = Payment.objects.filter(
        order_id=order_id, status__in=[Status.PENDING, Status.EXPIRED, Status.REJECTED], provider_order_id__isnull=False
    )
    for payment in list(qrs):
        try:
            mp_order = gateway().get_order(payment.provider_order_id)
        except GatewayError as exc:
            logger.warning("stale order %s left for later: %s", order_id, exc.message)
            return False
        payment_apply_provider_order(mp_order=mp_order, source=note(gettext_noop("stale order check")))
    return Order.objects.filter(pk=order_id, status=Order.Status.AWAITING_PAYMENT).exists() and not (
        money_held_for_review(order_id)
    )


def _orders_still_payable(now):
    """Orders with a QR the customer may still pay, one being made, or money held for review."""
    grace = settings.MERCADOPAGO_QR_GRACE
    live = Q(status__in=[Status.PENDING, Status.EXPIRED], expires_at__gt=now - grace)
    being_made = Q(
        status=Status.PENDING,
        expires_at__isnull=True,
        created_at__gt=now - settings.MERCADOPAGO_QR_EXPIRATION - grace,
    )
    held = Q(status__in=MONEY_HELD)
    return Payment.objects.filter(live | being_made | held).values("order_id")
