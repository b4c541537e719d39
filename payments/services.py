"""Every change to a payment: checkout, applying what Mercado Pago says, cancelling, refunding.

Rules that hold everywhere here:
- No row lock is held while calling Mercado Pago: lock, decide, release, call, lock again, record.
- Locks are taken in one order: the order row, then the payment row.
- Mercado Pago is the source of truth: a notification is only a hint to fetch the order and apply it;
  applying is idempotent and never moves a payment backwards (a late or duplicated report changes nothing).
- Money: the paid amount must equal the order total to the cent; anything odd is flagged for review and
  never reaches the kitchen. Money taken for an order we had already given up on is refunded automatically.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from kiosk.problems import Conflict, DomainError
from orders import services as order_services
from orders.models import Order
from payments.gateway import GatewayError, GatewayRejected, GatewayUnavailable, gateway
from payments.models import Payment, PaymentEvent, Refund

logger = logging.getLogger(__name__)
P = Payment.Status
E = PaymentEvent.Type
MONEY_TAKEN = {P.APPROVED, P.PARTIALLY_REFUNDED, P.REFUNDED, P.CHARGED_BACK}
_RANK = {P.APPROVED: 0, P.PARTIALLY_REFUNDED: 1, P.REFUNDED: 2, P.CHARGED_BACK: 3}


class OrderNotPayable(Conflict):
    code = "order_not_payable"


class PaymentUnderReview(Conflict):
    code = "payment_under_review"


class TerminalNotReady(DomainError):
    status = 409
    code = "terminal_not_ready"


class RefundNotAllowed(DomainError):
    status = 409
    code = "refund_not_allowed"


class RefundAmountInvalid(DomainError):
    status = 400
    code = "refund_amount_invalid"


def _event(payment: Payment, type_: str, *, actor: str = "system", **fields) -> PaymentEvent | None:
    """Appends to the ledger. A fact Mercado Pago already reported (same provider_reference) is recorded once."""
    try:
        with transaction.atomic():
            return PaymentEvent.objects.create(payment=payment, type=type_, actor=actor, **fields)
    except IntegrityError:
        if not fields.get("provider_reference"):
            raise
        return None


def _set_status(payment: Payment, status: str, *, payload=None, message: str = "", actor: str = "system") -> None:
    if payment.status == status:
        return
    _event(
        payment,
        E.STATUS_CHANGED,
        from_status=payment.status,
        to_status=status,
        payload=payload,
        message=message,
        actor=actor,
    )
    payment.status = status


def _flag(payment: Payment, reason: str, *, payload=None) -> None:
    payment.needs_review = True
    payment.review_reason = f"{payment.review_reason}\n{reason}".strip()
    _event(payment, E.REVIEW_FLAGGED, message=reason, payload=payload)
    logger.warning("payment %s flagged for review: %s", payment.pk, reason)


# --- Checkout -------------------------------------------------------------------------------------


def payment_checkout(*, order_id) -> tuple[Payment, bool]:
    """Gives the order a payable QR: the current one while it is valid (created=False), else a new one.

    Raises GatewayError when Mercado Pago cannot be reached or refuses; the payment row then records why,
    and the next checkout retries the same QR creation (same idempotency key, so never two QR orders).
    """
    to_cancel: list[int] = []
    with transaction.atomic():
        order = Order.objects.select_for_update().select_related("terminal").get(pk=order_id)
        if order.status != Order.Status.AWAITING_PAYMENT:
            raise OrderNotPayable(f"Order #{order.number} is '{order.status}', not awaiting payment.")
        if order.payments.filter(status__in=MONEY_TAKEN).exists():
            # Money already came for this order but did not settle it (a wrong amount): never charge again
            # before a person has looked.
            raise PaymentUnderReview(f"A payment for order #{order.number} is waiting for staff review.")
        terminal = order.terminal
        if not terminal.active or not terminal.external_pos_id:
            raise TerminalNotReady(f"Terminal '{terminal.name}' is not set up for Mercado Pago payments.")
        payment = order.payments.filter(status=P.PENDING).order_by("-created_at").first()
        if payment and payment.qr_valid:
            return payment, False
        if payment and payment.provider_order_id:
            # Its QR ran out on our clock: give it up (and cancel it at Mercado Pago after commit).
            _set_status(payment, P.EXPIRED, message="QR expired before payment (local clock)")
            payment.save()
            to_cancel.append(payment.pk)
            payment = None
        if payment and payment.created_at < timezone.now() - settings.MERCADOPAGO_QR_EXPIRATION:
            _set_status(payment, P.EXPIRED, message="QR creation never confirmed by Mercado Pago")
            payment.save()
            payment = None
        if payment is None:
            payment = Payment.objects.create(order=order, amount=order.total)
            _event(payment, E.CREATED, amount=payment.amount, message=f"Checkout of order #{order.number}")
    if to_cancel:
        transaction.on_commit(lambda: _cancel_at_provider(to_cancel))

    try:
        mp_order = gateway().create_qr_order(
            reference=payment.reference, order=order, terminal=terminal, expiration=settings.MERCADOPAGO_QR_EXPIRATION
        )
    except GatewayError as exc:
        with transaction.atomic():
            locked = Payment.objects.select_for_update().get(pk=payment.pk)
            locked.last_error = exc.message
            locked.save(update_fields=["last_error", "updated_at"])
            _event(locked, E.QR_FAILED, message=exc.message, payload=exc.body)
        raise

    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        locked.provider_order_id = locked.provider_order_id or mp_order.get("id")
        mp_payments = (mp_order.get("transactions") or {}).get("payments") or []
        if mp_payments and not locked.provider_payment_id:
            locked.provider_payment_id = str(mp_payments[0].get("id") or "")
        locked.qr_data = (mp_order.get("type_response") or {}).get("qr_data") or ""
        # A retried creation may return an order Mercado Pago made earlier: its clock starts at its creation.
        locked.expires_at = min(_provider_time(mp_order.get("created_date")), timezone.now()) + (
            settings.MERCADOPAGO_QR_EXPIRATION
        )
        locked.provider_status = locked.provider_status or str(mp_order.get("status") or "")
        locked.last_error = ""
        locked.save()
        _event(locked, E.QR_CREATED, payload=mp_order, provider_reference=locked.provider_order_id)
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


# --- Applying Mercado Pago's view of an order -----------------------------------------------------


@dataclass
class ProviderState:
    """What a Mercado Pago order says, in our vocabulary."""

    status: str
    paid_amount: Decimal | None
    payment_id: str
    refunds: list[dict] = field(default_factory=list)


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if value not in (None, "") else None
    except (InvalidOperation, ValueError):
        return None


def interpret_order(mp_order: dict) -> ProviderState:
    status = str(mp_order.get("status") or "").lower()
    detail = str(mp_order.get("status_detail") or "").lower()
    transactions = mp_order.get("transactions") or {}
    payments = transactions.get("payments") or []
    first = payments[0] if payments and isinstance(payments[0], dict) else {}
    if status == "processed":
        ours = P.PARTIALLY_REFUNDED if detail == "partially_refunded" else P.APPROVED
    elif status == "refunded":
        ours = P.PARTIALLY_REFUNDED if detail == "partially_refunded" else P.REFUNDED
    else:
        ours = {
            "canceled": P.CANCELLED,
            "cancelled": P.CANCELLED,
            "expired": P.EXPIRED,
            "failed": P.REJECTED,
            "rejected": P.REJECTED,
            "charged_back": P.CHARGED_BACK,
        }.get(status, P.PENDING)
    paid = _decimal(mp_order.get("total_paid_amount")) or _decimal(first.get("paid_amount"))
    if paid is None and ours in MONEY_TAKEN:
        paid = _decimal(first.get("amount")) or _decimal(mp_order.get("total_amount"))
    refunds = [r for r in (transactions.get("refunds") or []) if isinstance(r, dict) and r.get("id")]
    return ProviderState(status=ours, paid_amount=paid, payment_id=str(first.get("id") or ""), refunds=refunds)


def _may_move(current: str, target: str) -> bool:
    if current == target:
        return False
    if current in MONEY_TAKEN:
        return target in MONEY_TAKEN and _RANK[target] > _RANK[current]
    if target in MONEY_TAKEN or current == P.PENDING:
        return True
    return current == P.REJECTED and target in (P.EXPIRED, P.CANCELLED)


def find_payment(mp_order: dict) -> Payment | None:
    provider_order_id = str(mp_order.get("id") or "")
    reference = str(mp_order.get("external_reference") or "")
    lookup = Q(provider_order_id=provider_order_id) if provider_order_id else Q(pk__in=[])
    if reference:
        lookup |= Q(reference=reference)
    return Payment.objects.filter(lookup).first()


def payment_apply_provider_order(*, mp_order: dict, source: str) -> Payment | None:
    """Applies Mercado Pago's current view of one of its orders. Returns our payment, or None if not ours."""
    found = find_payment(mp_order)
    if found is None:
        logger.info("Mercado Pago order %s is not one of ours (%s)", mp_order.get("id"), source)
        return None
    state = interpret_order(mp_order)
    refund_after_commit = False
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=found.order_id)
        payment = Payment.objects.select_for_update().get(pk=found.pk)
        payment.provider_order_id = payment.provider_order_id or str(mp_order.get("id") or "") or None
        payment.provider_payment_id = payment.provider_payment_id or state.payment_id
        payment.provider_status = str(mp_order.get("status") or "")[:40]
        payment.provider_status_detail = str(mp_order.get("status_detail") or "")[:60]

        if _may_move(payment.status, state.status):
            if state.status in MONEY_TAKEN and payment.status not in MONEY_TAKEN:
                refund_after_commit = _money_received(order, payment, state, mp_order, source)
            _set_status(payment, state.status, payload=mp_order, message=f"from {source}")
        _record_provider_refunds(payment, state, mp_order)
        _withdraw_if_refunded(order, payment)
        payment.save()
    if refund_after_commit:
        transaction.on_commit(lambda: _auto_refund(payment.pk))  # never call Mercado Pago inside a transaction
    return payment


def payment_note_notification(*, payment: Payment, delivery_id: int, topic: str, action: str, body: str) -> None:
    """The ledger line for a notification that concerned this payment (once per delivery)."""
    try:
        payload = json.loads(body) if body else None
    except (ValueError, RecursionError):
        payload = {"raw": body[:2000]}
    _event(
        payment,
        E.NOTIFICATION_RECEIVED,
        message=f"{topic} {action} (delivery {delivery_id})".strip(),
        payload=payload,
        provider_reference=f"delivery-{delivery_id}",
        actor="mercadopago",
    )


def _money_received(order: Order, payment: Payment, state: ProviderState, mp_order: dict, source: str) -> bool:
    """The money is in. Decide whether it pays the order. Returns True when it must be given back."""
    previous = payment.status
    given_up = previous in (P.EXPIRED, P.CANCELLED) or order.status == Order.Status.CANCELLED
    _set_status(payment, P.APPROVED, payload=mp_order, message=f"from {source}")
    payment.paid_amount = state.paid_amount
    payment.paid_at = timezone.now()
    settled_by = Payment.objects.filter(settles=order).exclude(pk=payment.pk).first()
    if settled_by is not None:
        _flag(
            payment,
            f"Second payment for order #{order.number}, already paid by payment {settled_by.pk}.",
            payload=mp_order,
        )
        return False
    if state.paid_amount != payment.amount or payment.amount != order.total:
        _flag(
            payment,
            f"Amount mismatch: Mercado Pago says {state.paid_amount} was paid; order #{order.number} totals "
            f"{order.total} and the QR asked for {payment.amount}.",
            payload=mp_order,
        )
        return False
    if given_up:
        _flag(
            payment,
            f"Paid after order #{order.number} was given up (payment {previous}, order {order.status}): "
            "refunding automatically.",
            payload=mp_order,
        )
        return True
    if order.status != Order.Status.AWAITING_PAYMENT:
        _flag(payment, f"Order #{order.number} was already '{order.status}' without this payment.", payload=mp_order)
        return False
    payment.settles = order
    order_services.order_mark_paid(order_id=order.pk)
    logger.info("payment %s approved: order #%s to the kitchen", payment.pk, order.number)
    return False


def _record_provider_refunds(payment: Payment, state: ProviderState, mp_order: dict) -> None:
    """Refunds Mercado Pago reports (ours, or made in its own panel) enter our books once."""
    for mp_refund in state.refunds:
        refund_id = str(mp_refund["id"])
        amount = _decimal(mp_refund.get("amount"))
        if amount is None or str(mp_refund.get("status", "")).lower() in (
            "rejected",
            "failed",
            "canceled",
            "cancelled",
        ):
            continue
        if Refund.objects.filter(provider_refund_id=refund_id).exists():
            continue
        ours = payment.refunds.filter(status=Refund.Status.REQUESTED, provider_refund_id=None, amount=amount).first()
        if ours is None:
            ours = Refund(
                payment=payment, amount=amount, reason="Refund made at Mercado Pago", requested_by="mercadopago"
            )
        ours.provider_refund_id = refund_id
        ours.status = Refund.Status.SUCCEEDED
        ours.save()
        _event(payment, E.REFUND_SUCCEEDED, amount=amount, provider_reference=refund_id, payload=mp_order)


def _withdraw_if_refunded(order: Order, payment: Payment) -> None:
    """All the money of the payment that paid the order went back before the food was handed over:
    the order leaves the kitchen queue. After delivery, the order stays completed. (Locks held.)"""
    kitchen = (Order.Status.RECEIVED, Order.Status.IN_PREPARATION, Order.Status.READY)
    if payment.status == P.REFUNDED and payment.settles_id == order.pk and order.status in kitchen:
        order_services.order_withdraw_refunded(order_id=order.pk)
        _event(payment, E.STATUS_CHANGED, message=f"order #{order.number} withdrawn from the kitchen (refunded)")


# --- Cancelling -----------------------------------------------------------------------------------


def order_cancel_unpaid(*, order_id, reason: str = Order.CancelReason.CUSTOMER, actor: str = "system") -> Order:
    """Cancels an unpaid order, releases its stock, and cancels its open QR at Mercado Pago."""
    with transaction.atomic():
        order = order_services.order_cancel(order_id=order_id, reason=reason)
        pending = list(Payment.objects.select_for_update().filter(order_id=order_id, status=P.PENDING))
        for payment in pending:
            _set_status(payment, P.CANCELLED, message=f"order cancelled ({reason})", actor=actor)
            payment.save()
        to_cancel = [p.pk for p in pending if p.provider_order_id]
    _cancel_at_provider(to_cancel)
    return order


def order_mark_paid_outside(*, order_id, actor: str) -> Order:
    """Staff took the money another way (cash, card machine): the order goes to the kitchen and its open
    QR is cancelled at Mercado Pago, so the customer cannot pay twice."""
    with transaction.atomic():
        order = order_services.order_mark_paid(order_id=order_id)
        pending = list(Payment.objects.select_for_update().filter(order_id=order_id, status=P.PENDING))
        for payment in pending:
            _set_status(payment, P.CANCELLED, message="order paid outside Mercado Pago", actor=actor)
            payment.save()
    _cancel_at_provider([p.pk for p in pending if p.provider_order_id])
    return order


def _cancel_at_provider(payment_ids: list[int]) -> None:
    """Best effort: a QR we gave up on is cancelled at Mercado Pago; if it was paid meanwhile, the
    fetched state is applied (and the money goes back). Failures are left to `reconcile_payments`."""
    for payment in Payment.objects.filter(pk__in=payment_ids, provider_order_id__isnull=False):
        _event(payment, E.CANCEL_REQUESTED)
        try:
            mp_order = gateway().cancel_order(payment.provider_order_id, idempotency_key=f"{payment.reference}-cancel")
        except GatewayRejected as exc:
            _event(payment, E.CANCEL_FAILED, message=exc.message, payload=exc.body)
            try:
                mp_order = gateway().get_order(payment.provider_order_id)
            except GatewayError:
                continue
        except GatewayError as exc:
            _event(payment, E.CANCEL_FAILED, message=exc.message, payload=exc.body)
            continue
        payment_apply_provider_order(mp_order=mp_order, source="cancel")


def orders_cancel_stale(*, now=None) -> int:
    """Cancels orders left unpaid longer than ORDER_PAYMENT_TIMEOUT (and their QRs), releasing stock."""
    cutoff = (now or timezone.now()) - settings.ORDER_PAYMENT_TIMEOUT
    cancelled = 0
    stale = Order.objects.filter(status=Order.Status.AWAITING_PAYMENT, created_at__lt=cutoff)
    for order_id in list(stale.values_list("pk", flat=True)):
        try:
            order_cancel_unpaid(order_id=order_id, reason=Order.CancelReason.PAYMENT_EXPIRED)
            cancelled += 1
        except DomainError:
            pass  # paid (or cancelled) while we were looking
    return cancelled


# --- Refunds --------------------------------------------------------------------------------------


def refundable_amount(payment: Payment) -> Decimal:
    """Paid minus what is refunded or being refunded. Call with the payment row locked."""
    held = payment.refunds.exclude(status=Refund.Status.FAILED).aggregate(s=Sum("amount"))["s"] or Decimal("0")
    return max(Decimal("0.00"), (payment.paid_amount or Decimal("0")) - held)


def refund_request(*, payment_id, amount: Decimal | None, reason: str, actor: str) -> Refund:
    """Gives money back through Mercado Pago: all that is refundable by default, or part of it.

    The amount is checked and held under a row lock, then Mercado Pago is called with the refund's own
    idempotency key (a retry never refunds twice), then the answer is recorded.
    """
    if not reason or not reason.strip():
        raise RefundAmountInvalid("A refund needs a reason.")
    with transaction.atomic():
        order_id = Payment.objects.values_list("order_id", flat=True).get(pk=payment_id)
        Order.objects.select_for_update().get(pk=order_id)
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status not in (P.APPROVED, P.PARTIALLY_REFUNDED) or not payment.provider_order_id:
            raise RefundNotAllowed(f"Payment {payment.pk} is '{payment.status}': there is no money to give back.")
        refundable = refundable_amount(payment)
        amount = refundable if amount is None else Decimal(amount).quantize(Decimal("0.01"))
        if amount <= 0 or amount > refundable:
            raise RefundAmountInvalid(f"Refund must be between 0.01 and {refundable}; asked for {amount}.")
        full = amount == payment.paid_amount
        refund = Refund.objects.create(payment=payment, amount=amount, reason=reason.strip(), requested_by=actor)
        _event(
            payment,
            E.REFUND_REQUESTED,
            amount=amount,
            message=reason.strip(),
            actor=actor,
            provider_reference=refund.idempotency_key,
        )
    return _refund_call(refund, full=full)


# Mercado Pago's "not now" answers to a refund (documented for the Orders API): retried, not failed.
RETRY_LATER_REFUND_CODES = {"refund_in_progress", "movement_operations_pending", "idempotency_validation_failed"}


def _refund_call(refund: Refund, *, full: bool) -> Refund:
    payment = refund.payment
    try:
        mp_order = gateway().refund_order(
            payment.provider_order_id,
            idempotency_key=refund.idempotency_key,
            transaction_id=payment.provider_payment_id,
            amount=None if full else refund.amount,
        )
    except GatewayRejected as exc:
        if exc.code in RETRY_LATER_REFUND_CODES:
            # Mercado Pago is busy with this order: hold the amount, reconcile retries with the same key.
            Refund.objects.filter(pk=refund.pk).update(error=exc.message)
            _event(
                payment, E.REFUND_FAILED, amount=refund.amount, message=f"will retry: {exc.message}", payload=exc.body
            )
            raise GatewayUnavailable(exc.message, status=exc.status, code=exc.code, body=exc.body) from exc
        with transaction.atomic():
            locked = Refund.objects.select_for_update().get(pk=refund.pk)
            locked.status, locked.error = Refund.Status.FAILED, exc.message
            locked.save()
            _event(payment, E.REFUND_FAILED, amount=refund.amount, message=exc.message, payload=exc.body)
        raise
    except GatewayError as exc:
        # Unknown outcome: the refund stays requested (holding its amount); reconcile retries it with
        # the same idempotency key.
        Refund.objects.filter(pk=refund.pk).update(error=exc.message)
        _event(payment, E.REFUND_FAILED, amount=refund.amount, message=f"will retry: {exc.message}", payload=exc.body)
        raise

    with transaction.atomic():
        locked_order = Order.objects.select_for_update().get(pk=payment.order_id)
        locked_payment = Payment.objects.select_for_update().get(pk=payment.pk)
        locked = Refund.objects.select_for_update().get(pk=refund.pk)
        if locked.status == Refund.Status.REQUESTED:
            mp_refunds = (mp_order.get("transactions") or {}).get("refunds") or []
            known = set(Refund.objects.exclude(provider_refund_id=None).values_list("provider_refund_id", flat=True))
            fresh = [r for r in mp_refunds if isinstance(r, dict) and r.get("id") and str(r["id"]) not in known]
            locked.provider_refund_id = str(fresh[-1]["id"]) if fresh else None
            locked.status, locked.error = Refund.Status.SUCCEEDED, ""
            locked.save()
            _event(
                locked_payment,
                E.REFUND_SUCCEEDED,
                amount=locked.amount,
                payload=mp_order,
                provider_reference=locked.provider_refund_id or locked.idempotency_key,
            )
        refunded = locked_payment.refunded_amount()  # from the ledger, like everywhere else
        target = P.REFUNDED if refunded >= (locked_payment.paid_amount or 0) else P.PARTIALLY_REFUNDED
        if _may_move(locked_payment.status, target):
            _set_status(locked_payment, target, payload=mp_order, message=f"refund {locked.pk}")
        _withdraw_if_refunded(locked_order, locked_payment)
        locked_payment.save()
    return locked


def _auto_refund(payment_id: int) -> None:
    try:
        refund_request(
            payment_id=payment_id, amount=None, reason="Automatic: paid after the order was given up", actor="system"
        )
    except (GatewayError, DomainError) as exc:
        logger.error("automatic refund of payment %s failed: %s", payment_id, exc)


# --- The review queue -----------------------------------------------------------------------------


class ReviewNotPossible(DomainError):
    status = 409
    code = "review_not_possible"


def payment_sync(*, payment_id) -> Payment:
    """Fetches the payment's Mercado Pago order and applies it (the admin's "Sync with Mercado Pago")."""
    payment = Payment.objects.get(pk=payment_id)
    if not payment.provider_order_id:
        raise ReviewNotPossible(f"Payment {payment.pk} has no Mercado Pago order yet.")
    mp_order = gateway().get_order(payment.provider_order_id)
    return payment_apply_provider_order(mp_order=mp_order, source="manual sync") or payment


def payment_review_approve(*, payment_id, actor: str, comment: str = "") -> Payment:
    """Sends a flagged payment's order to the kitchen, only when Mercado Pago confirms the money is there,
    untouched, and the amounts match to the cent, and the order is still waiting for exactly this money."""
    payment = Payment.objects.get(pk=payment_id)
    if not payment.provider_order_id:
        raise ReviewNotPossible(f"Payment {payment.pk} has no Mercado Pago order.")
    mp_order = gateway().get_order(payment.provider_order_id)
    state = interpret_order(mp_order)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=payment.order_id)
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        problems = []
        if state.status != P.APPROVED:
            problems.append(f"Mercado Pago says the order is '{mp_order.get('status')}', not paid")
        if state.paid_amount != order.total or payment.amount != order.total:
            problems.append(f"paid {state.paid_amount}, order total {order.total}")
        if order.status != Order.Status.AWAITING_PAYMENT:
            problems.append(f"order #{order.number} is '{order.status}'")
        if Payment.objects.filter(settles=order).exclude(pk=payment.pk).exists():
            problems.append("another payment already paid this order")
        if payment.refunds.exclude(status=Refund.Status.FAILED).exists():
            problems.append("money was (or is being) given back")
        if problems:
            raise ReviewNotPossible("Cannot approve: " + "; ".join(problems) + ".")
        _set_status(payment, P.APPROVED, payload=mp_order, message="approved in review", actor=actor)
        payment.paid_amount, payment.paid_at = state.paid_amount, payment.paid_at or timezone.now()
        payment.settles = order
        payment.needs_review = False
        payment.save()
        order_services.order_mark_paid(order_id=order.pk)
        _event(payment, E.REVIEW_RESOLVED, message=f"Approved and sent to the kitchen. {comment}".strip(), actor=actor)
    return payment


def payment_review_resolve(*, payment_id, actor: str, comment: str) -> Payment:
    """Takes a payment off the review queue with a comment saying what was done about it."""
    if not comment or not comment.strip():
        raise ReviewNotPossible("Say what was done: a comment is required.")
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        payment.needs_review = False
        payment.save(update_fields=["needs_review", "updated_at"])
        _event(payment, E.REVIEW_RESOLVED, message=comment.strip(), actor=actor)
    return payment


# --- Reconciliation -------------------------------------------------------------------------------


def payments_reconcile(*, limit: int = 200, min_age: timedelta = timedelta(seconds=30)) -> tuple[int, int]:
    """Asks Mercado Pago about every payment still open on either side, and retries refunds whose
    outcome is unknown. Returns (payments checked, refunds retried). Safe to run every minute."""
    now = timezone.now()
    still_open = Q(status=P.PENDING, updated_at__lt=now - min_age) | Q(
        status__in=[P.CANCELLED, P.EXPIRED],
        provider_status__in=["", "created", "action_required", "at_terminal"],
        updated_at__lt=now - min_age,
    )
    # Settled payments can still change at Mercado Pago (a refund made in its panel, a chargeback): look at
    # recent ones now and then, in case their notification never came or never verified.
    recently_settled = Q(
        status__in=[P.APPROVED, P.PARTIALLY_REFUNDED],
        paid_at__gte=now - settings.MERCADOPAGO_RECONCILE_SETTLED_FOR,
        updated_at__lt=now - settings.MERCADOPAGO_RECONCILE_SETTLED_EVERY,
    )
    candidates = Payment.objects.filter(still_open | recently_settled, provider_order_id__isnull=False).order_by(
        "updated_at"
    )[:limit]
    checked = 0
    for payment in list(candidates):
        try:
            mp_order = gateway().get_order(payment.provider_order_id)
        except GatewayError as exc:
            logger.warning("reconcile: payment %s: %s", payment.pk, exc.message)
            continue
        applied = payment_apply_provider_order(mp_order=mp_order, source="reconcile")
        checked += 1
        if applied and applied.status in (P.CANCELLED, P.EXPIRED) and interpret_order(mp_order).status == P.PENDING:
            _cancel_at_provider([applied.pk])  # we gave it up, Mercado Pago still offers it: close it there too

    for payment_id in Payment.objects.filter(
        status=P.PENDING, provider_order_id__isnull=True, created_at__lt=now - settings.MERCADOPAGO_QR_EXPIRATION
    ).values_list("pk", flat=True):
        with transaction.atomic():
            payment = Payment.objects.select_for_update().get(pk=payment_id)
            if payment.status == P.PENDING and not payment.provider_order_id:
                _set_status(payment, P.EXPIRED, message="QR creation never confirmed by Mercado Pago")
                payment.save()

    retried = 0
    for refund in Refund.objects.filter(status=Refund.Status.REQUESTED, created_at__lt=now - timedelta(minutes=1)):
        try:
            _refund_call(refund, full=refund.amount == refund.payment.paid_amount)
            retried += 1
        except (GatewayError, DomainError) as exc:
            logger.warning("reconcile: refund %s: %s", refund.pk, exc)
    return checked, retried
