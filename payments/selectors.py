"""Reads about payments: what a kiosk is told, what is still refundable, which payment Mercado Pago means."""

from decimal import Decimal

from django.db.models import Q, Sum

from orders.models import Order
from payments.models import Payment, Refund
from payments.transitions import MONEY_HELD

Status = Payment.Status
# What a kiosk reads instead of `approved` when the money came in but did not pay the order (a wrong
# amount, a second payment, anything a person must look at): "see the counter", never "paid".
UNDER_REVIEW = "under_review"
KIOSK_STATUSES = [*Status.values, UNDER_REVIEW]
REFUNDS_HOLDING = (Refund.Status.REQUESTED, Refund.Status.PENDING, Refund.Status.SUCCEEDED)


def kiosk_status(payment: Payment) -> str:
    """The payment's status as the kiosk must show it: `approved` only for the money that paid the order."""
    if payment.status in MONEY_HELD and payment.settles_id is None:
        return UNDER_REVIEW
    return payment.status


def payment_for_kiosk(order: Order) -> Payment | None:
    """The payment a kiosk follows: the one that paid the order; else money held for review (the customer
    must see the counter, not a QR); else the latest. One query (an order has a handful of payments)."""
    payments = list(Payment.objects.filter(order=order).order_by("-created_at", "-id"))
    return (
        next((p for p in payments if p.settles_id == order.pk), None)
        or next((p for p in payments if p.status in MONEY_HELD), None)
        or next(iter(payments), None)
    )


def refundable_amount(payment: Payment) -> Decimal:
    """Paid minus what is refunded or being refunded (requested, pending). Call with the payment row locked
    when the answer decides a refund."""
    held = payment.refunds.filter(status__in=REFUNDS_HOLDING).aggregate(total=Sum("amount"))["total"]
    return max(Decimal("0.00"), (payment.paid_amount or Decimal("0")) - (held or Decimal("0")))


def refund_pending_amount(payment: Payment) -> Decimal:
    """Asked of Mercado Pago and not confirmed yet (requested or pending)."""
    total = payment.refunds.filter(status__in=(Refund.Status.REQUESTED, Refund.Status.PENDING)).aggregate(
        total=Sum("amount")
    )["total"]
    return total or Decimal("0.00")


def money_held_for_review(order_id) -> bool:
    """Money came for this unpaid order and is still with us: a person must look before anyone charges again."""
    return Payment.objects.filter(order_id=order_id, status__in=MONEY_HELD).exists()


def find_payment(mp_order: dict) -> Payment | None:
    """Our payment for a Mercado Pago order: by its id, or by our external_reference (a notification can
    arrive before we stored the id)."""
    provider_order_id = str(mp_order.get("id") or "")
    reference = str(mp_order.get("external_reference") or "")
    lookup = Q(provider_order_id=provider_order_id) if provider_order_id else Q(pk__in=[])
    if reference:
        lookup |= Q(reference=reference)
    return Payment.objects.filter(lookup).first()
