"""What happens to a simulated order on Mercado Pago's side: the buyer pays (or is declined), the QR expires,
refunds are settled, a payment is charged back. The API (api.py), the pay page and the test hooks (views.py)
and the pump (pump.py) call these; so can tests.

QR order life cycle (Mercado Pago's "status of an order and a transaction" page for QR Code):

    created --paid--> processed/accredited --full refund--> refunded/refunded
       |                     \\--partial refund--> processed/partially_refunded
       |--canceled via API--> canceled/canceled     (transaction canceled/canceled_by_api)
       |--time is up--------> expired/expired       (transaction expired/expired)
       \\--payment declined--> failed/failed         (transaction failed/rejected_by_issuer)

Refunds are asynchronous, as at Mercado Pago: the refund call creates the refund "processing" (its amount
reserved) and answers; REFUND_DELAY seconds later (`confirm_at`) it is settled, "processed" or "failed" (the
amount is refundable again), the statuses above are recomputed, and order.refunded is notified. Settling
happens in `confirm_refunds` (the pump, tests, the /refunds/confirm hook) and lazily: whenever the simulator
locks an order to read or change it (`lock_order`), its due refunds are settled first.

A chargeback (`simulate(..., "charged_back")`) adds `transactions.chargebacks[]` to a paid order and turns
the payment "charged_back" in the Payments API; the order's own status stays what it was.
"""

import logging
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from payments.simulator import notify as notifications
from payments.simulator import shapes
from payments.simulator.errors import ApiError, orders_error
from payments.simulator.models import SimChargeback, SimOrder, SimPayment, SimRefund

OUTCOMES = ("approved", "rejected", "expired", "charged_back")
REFUND_OUTCOMES = ("processed", "failed")
logger = logging.getLogger(__name__)

MAX_DUPLICATES = 10
MAX_PAID_AMOUNT = Decimal(10) ** 10  # SimPayment.paid_amount holds 12 digits, 2 of them decimals
MAX_DELAY_S = 30


def lock_order(order_id: str, *, settle: bool = True) -> SimOrder:
    """The order, locked for update until the transaction ends; 404 order_not_found if there is none.

    With `settle` (always, except inside confirm_refunds), its refunds that are due are settled first (and
    notified), so whoever reads the order sees what Mercado Pago would show by now."""
    try:
        order = SimOrder.objects.select_for_update().get(pk=order_id)
    except SimOrder.DoesNotExist:
        raise orders_error(404, "order_not_found", "Order not found.")
    if settle:
        _settle_refunds(order, now=timezone.now())
    return order


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
        exact = (
            amount is not None
            and amount.is_finite()
            and amount < MAX_PAID_AMOUNT
            and amount == amount.quantize(shapes.TWO_PLACES)
        )
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
    delay_s: float | None = None,
    paid_amount: str | Decimal | None = None,
    notify: bool = True,
    signature_ts: str = "ms",
) -> dict:
    """Do to an order what the buyer (or the buyer's bank) would, and queue its notification unless `notify`
    is False (in the current transaction; it is sent `delay_s` seconds later, default
    settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY, with `duplicates` extra copies).

    approved:     order processed/accredited, its transaction processed/accredited with `paid_amount`
                  (default: the order's total; another value rehearses a wrong amount); order.processed.
    rejected:     order failed/failed, transaction failed/rejected_by_issuer; order.failed.
    expired:      order and transaction expired/expired; order.expired.
    charged_back: on a paid order (processed, partially refunded included): the buyer's bank takes the
                  payment back. A chargeback (status "opened") is added to transactions.chargebacks, the
                  Payments API shows the payment charged_back, and two notifications are queued: the order's,
                  with action order.processed, and a Payments API payment.updated. Mercado Pago documents no
                  order action for chargebacks; its Orders notifications are named after the order's status
                  (order.processed, order.refunded...), which a chargeback leaves "processed", so that is the
                  action whose receiver reads the order back and finds the chargeback in it.

    Returns the order as GET /v1/orders/{id} shows it. Raises ApiError (400 bad input, 404 unknown order,
    409 the order is not in a state this outcome applies to).
    """
    if outcome not in OUTCOMES:
        raise orders_error(400, "property_value", f"outcome must be one of {', '.join(OUTCOMES)}.", ["$.outcome"])
    if isinstance(duplicates, bool) or not isinstance(duplicates, int) or not 0 <= duplicates <= MAX_DUPLICATES:
        raise orders_error(400, "property_value", f"duplicates must be 0..{MAX_DUPLICATES}.", ["$.duplicates"])
    if delay_s is not None and (
        isinstance(delay_s, bool) or not isinstance(delay_s, int | float) or not 0 <= delay_s <= MAX_DELAY_S
    ):
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
        if outcome == "charged_back":
            return _charge_back(order, notify, duplicates=duplicates, delay_s=delay_s, signature_ts=signature_ts)
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


def _charge_back(order: SimOrder, notify: bool, **options) -> dict:
    """The buyer's bank takes a paid order's payment back (see `simulate`). The order must be locked."""
    if order.status != "processed":
        raise orders_error(
            409, "invalid_order_status", f"The order is {order.status}; only a paid order can be charged back."
        )
    payment = order.payments.select_for_update().filter(status="processed", reference_id__isnull=False).first()
    if payment is None:
        raise orders_error(409, "invalid_order_status", "The order has no paid transaction to charge back.")
    if payment.chargebacks.exists():
        raise orders_error(409, "chargeback_already_exists", "The payment is already charged back.")
    now = timezone.now()
    SimChargeback.objects.create(
        id=shapes.new_chargeback_id(),
        payment=payment,
        case_id=str(shapes.new_numeric_id()),
        status="opened",
        references=[str(payment.reference_id)],
        created_date=now,
    )
    payment.date_last_updated = now
    payment.save()
    touch(order, now)
    order.save()
    if notify:
        notifications.queue_order_notification(order, "order.processed", **options)
        notifications.queue_payment_notification(payment, "payment.updated", **options)
    return shapes.order_json(order)


def _settle_refunds(order: SimOrder, *, now, outcome: str | None = None, everything: bool = False) -> int:
    """Settle the order's processing refunds that are due at `now` (all of them with `everything`), each with
    its own outcome unless `outcome` says otherwise; then recompute the statuses and queue order.refunded.
    The order must be locked. Returns how many refunds were settled."""
    refunds = SimRefund.objects.filter(payment__order=order, status="processing")
    if not everything:
        refunds = refunds.filter(confirm_at__lte=now)
    refunds = list(refunds)
    if not refunds:
        return 0
    for refund in refunds:
        refund.status = outcome or refund.outcome
        refund.save(update_fields=["status"])
    # A failed refund counts for nothing: the money was not given back, and the amount is refundable again.
    any_refunded = False
    for payment in SimPayment.objects.filter(order=order, paid_amount__isnull=False):
        refunded = sum((r.amount for r in payment.refunds.filter(status="processed")), Decimal("0"))
        if not refunded:
            continue
        any_refunded = True
        if refunded >= payment.paid_amount:
            payment.status = payment.status_detail = "refunded"
        else:
            payment.status, payment.status_detail = "processed", "partially_refunded"
        payment.date_last_updated = now
        payment.save()
    if any_refunded:
        if all(p.status == "refunded" for p in order.payments.all()):
            order.status = order.status_detail = "refunded"
        else:
            order.status, order.status_detail = "processed", "partially_refunded"
    touch(order, now)
    order.save()
    # Mercado Pago documents no action for a refund that failed; the order changed, so it is order.refunded
    # too, and the receiver reads the order back and finds the refund "failed" in it.
    notifications.queue_order_notification(order, "order.refunded")
    logger.info("mp-simulator: %d refund(s) of %s settled", len(refunds), order.id)
    return len(refunds)


def confirm_refunds(order_id: str | None = None, *, outcome: str | None = None, now=None, everything=False) -> int:
    """Settle the processing refunds that are due (`confirm_at` passed; all of them with `everything`), of one
    order or of all, as Mercado Pago does some time after answering the refund call: each becomes "processed"
    (or "failed": the amount is refundable again) as its stored outcome says, or as `outcome` overrides; the
    transaction and the order become refunded/refunded when all is refunded, else
    processed/partially_refunded; the order's version goes up and order.refunded is queued.

    Each order is settled in a transaction of its own, with the order locked. Returns how many refunds were
    settled. Raises ApiError 400 for an unknown `outcome`.
    """
    if outcome is not None and outcome not in REFUND_OUTCOMES:
        raise orders_error(400, "property_value", "outcome must be processed or failed.", ["$.outcome"])
    now = now or timezone.now()
    due = SimRefund.objects.filter(status="processing")
    if order_id is not None:
        due = due.filter(payment__order_id=order_id)
    if not everything:
        due = due.filter(confirm_at__lte=now)
    settled = 0
    for pending_order_id in sorted(set(due.values_list("payment__order_id", flat=True))):
        with transaction.atomic():
            order = lock_order(pending_order_id, settle=False)
            settled += _settle_refunds(order, now=now, outcome=outcome, everything=everything)
    return settled


def refunds_pending() -> bool:
    """Whether any refund is still processing (the pump keeps running while one is)."""
    return SimRefund.objects.filter(status="processing").exists()


__all__ = [
    "OUTCOMES",
    "REFUND_OUTCOMES",
    "ApiError",
    "confirm_refunds",
    "expire_if_due",
    "lock_order",
    "refunds_pending",
    "simulate",
]
