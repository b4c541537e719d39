"""How the simulated Mercado Pago writes its resources: ids, money, dates, and the JSON of orders, payments
and notification summaries, following the Orders API and Payments API documentation (and, for the parts
the docs leave out, such as `transactions.chargebacks[]`, the official SDKs' Orders types).

Orders API money is a string with two decimals ("25.90"); the Payments API uses JSON numbers. Everything
here is Decimal until the last moment; see `payment_number` for the one place a number is produced.
"""

import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from payments.simulator.models import SimChargeback, SimOrder, SimPayment, SimRefund

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TWO_PLACES = Decimal("0.01")

# Constant parts of an order as Mercado Pago Brazil answers them.
COUNTRY_CODE = "BRA"
CURRENCY = "BRL"
# What the buyer pays with in the simulator: the balance of their Mercado Pago account.
PAYMENT_METHOD = {"id": "account_money", "type": "account_money", "installments": 1}


def ulid() -> str:
    """A ULID (26 Crockford base-32 characters: 48-bit millisecond time, 80 random bits), as in ORD01JQ4S4K..."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_order_id() -> str:
    return "ORD" + ulid()


def new_payment_id() -> str:
    return "PAY" + ulid()


def new_refund_id() -> str:
    return "REF" + ulid()


def new_chargeback_id() -> str:
    return "CHB" + ulid()


def new_numeric_id() -> int:
    """An 11-digit id like the Payments API's (payments, refunds); unique columns catch the odd collision."""
    return 10**10 + secrets.randbelow(9 * 10**10)


def money(value: Decimal) -> str:
    """Orders API money: a string with exactly two decimals."""
    return str(Decimal(value).quantize(TWO_PLACES))


def payment_number(value: Decimal) -> int | float:
    """Payments API money is a JSON number. A two-decimal Decimal converts to the float whose shortest repr
    is the same number (25.90 -> 25.9), which is what Mercado Pago's JSON carries; callers read it back
    with Decimal(str(x))."""
    value = Decimal(value).quantize(TWO_PLACES)
    return int(value) if value == value.to_integral_value() else float(value)


def orders_date(moment: datetime) -> str:
    """Orders API dates: UTC with milliseconds, e.g. 2025-08-21T19:43:10.130Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def payments_date(moment: datetime | None) -> str | None:
    """Payments API dates: local time with milliseconds and offset, e.g. 2026-05-25T13:01:02.000-03:00."""
    if moment is None:
        return None
    local = timezone.localtime(moment)
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}{offset[:3]}:{offset[3:]}"


def pay_page_url(order_id: str) -> str:
    """What the QR encodes in the simulator: the pay page, so a phone scanning the kiosk's QR can pay."""
    return f"{settings.SITE_URL}/mp-simulator/pay/{order_id}/"


def _refunded_amount(payment: SimPayment, refunds: list[SimRefund]) -> Decimal:
    return sum((r.amount for r in refunds if r.payment_id == payment.id and r.status == "processed"), Decimal("0"))


def _order_parts(order: SimOrder) -> tuple[list[SimPayment], list[SimRefund], list[SimChargeback]]:
    payments = list(order.payments.all().order_by("id"))
    refunds = list(SimRefund.objects.filter(payment__order=order).order_by("created_date", "id"))
    chargebacks = list(SimChargeback.objects.filter(payment__order=order).order_by("created_date", "id"))
    return payments, refunds, chargebacks


def total_paid_amount(payments: list[SimPayment]) -> Decimal | None:
    paid = [p.paid_amount for p in payments if p.paid_amount is not None and p.status in ("processed", "refunded")]
    return sum(paid, Decimal("0")) if paid else None


def refund_json(refund: SimRefund) -> dict:
    return {
        "id": refund.id,
        "transaction_id": refund.payment_id,
        "reference_id": str(refund.reference_id),
        "amount": money(refund.amount),
        "status": refund.status,
    }


def chargeback_json(chargeback: SimChargeback) -> dict:
    """`transactions.chargebacks[]`: {id, transaction_id, case_id, status ("opened" | "closed"), references}."""
    return {
        "id": chargeback.id,
        "transaction_id": chargeback.payment_id,
        "case_id": chargeback.case_id,
        "status": chargeback.status,
        "references": list(chargeback.references),
    }


def _transactions(payments_out: list[dict], refunds: list[SimRefund], chargebacks: list[SimChargeback]) -> dict:
    transactions: dict = {"payments": payments_out}
    if refunds:
        transactions["refunds"] = [refund_json(r) for r in refunds]
    if chargebacks:
        transactions["chargebacks"] = [chargeback_json(c) for c in chargebacks]
    return transactions


def _payment_summary(payment) -> dict:
    """A transaction's fields common to GET order and notifications."""
    out = {
        "id": payment.id,
        "amount": money(payment.amount),
        "status": payment.status,
        "status_detail": payment.status_detail,
    }
    if payment.paid_amount is not None:
        out["paid_amount"] = money(payment.paid_amount)
    if payment.payment_method:
        out["payment_method"] = dict(payment.payment_method)
    return out


def order_json(order: SimOrder) -> dict:
    """The order as GET /v1/orders/{id} returns it (also the body of create and cancel)."""
    payments, refunds, chargebacks = _order_parts(order)
    payments_out = []
    for payment in payments:
        out = _payment_summary(payment)
        if payment.reference_id is not None:
            out["reference_id"] = str(payment.reference_id)
        refunded = _refunded_amount(payment, refunds)
        if refunded:
            out["refunded_amount"] = money(refunded)
        payments_out.append(out)

    transactions = _transactions(payments_out, refunds, chargebacks)
    body = {
        "id": order.id,
        "type": "qr",
        "processing_mode": "automatic",
        "external_reference": order.external_reference,
        "total_amount": money(order.total_amount),
        "expiration_time": order.expiration_time,
        "country_code": COUNTRY_CODE,
        "user_id": order.user_id,
        "status": order.status,
        "status_detail": order.status_detail,
        "currency": CURRENCY,
        "created_date": orders_date(order.created_date),
        "last_updated_date": orders_date(order.last_updated_date),
        "integration_data": {"application_id": order.application_id, **order.extra.get("integration_data", {})},
        "transactions": transactions,
        "config": {"qr": {"external_pos_id": order.external_pos_id, "mode": order.mode}},
    }
    if order.description:
        body["description"] = order.description
    paid = total_paid_amount(payments)
    if paid is not None:
        body["total_paid_amount"] = money(paid)
    # Only dynamic and hybrid orders carry a QR of their own; a static order is paid through the POS's fixed QR.
    if order.mode in ("dynamic", "hybrid"):
        body["type_response"] = {"qr_data": pay_page_url(order.id)}
    if order.items:
        body["items"] = order.items
    for name in ("discounts", "taxes"):
        if name in order.extra:
            body[name] = order.extra[name]
    return body


def notification_data(order: SimOrder) -> dict:
    """The order summary in a notification's `data` (payments carry `reference.id`, not `reference_id`)."""
    payments, refunds, chargebacks = _order_parts(order)
    payments_out = []
    for payment in payments:
        out = _payment_summary(payment)
        if payment.reference_id is not None:
            out["reference"] = {"id": str(payment.reference_id)}
        payments_out.append(out)
    transactions = _transactions(payments_out, refunds, chargebacks)
    data = {
        "id": order.id,
        "external_reference": order.external_reference,
        "status": order.status,
        "status_detail": order.status_detail,
        "total_amount": money(order.total_amount),
        "transactions": transactions,
        "type": "qr",
        "version": order.version,
    }
    paid = total_paid_amount(payments)
    if paid is not None:
        data["total_paid_amount"] = money(paid)
    return data


# Payments API view of an Orders API payment transaction.
_PAYMENT_STATUS = {
    # (transaction status, status_detail) -> (payment status, status_detail)
    ("processed", "accredited"): ("approved", "accredited"),
    ("processed", "partially_refunded"): ("approved", "partially_refunded"),
    ("refunded", "refunded"): ("refunded", "refunded"),
}
_REFUND_STATUS = {"processing": "in_process", "processed": "approved", "failed": "rejected"}
# A chargeback's payment: charged_back, with status_detail in_process while the dispute is open and settled
# once it is closed (the money taken back from the seller).
_CHARGEBACK_DETAIL = {"opened": "in_process", "closed": "settled"}


def payment_json(payment: SimPayment) -> dict:
    """GET /v1/payments/{id} for the payment the buyer made on a QR order (Payments API shape)."""
    order = payment.order
    refunds = list(payment.refunds.all())
    chargeback = payment.chargebacks.order_by("-created_date", "-id").first()
    if chargeback is not None:
        status, detail = "charged_back", _CHARGEBACK_DETAIL.get(chargeback.status, "in_process")
    elif payment.status == "failed":
        status, detail = "rejected", "cc_rejected_other_reason"
    else:
        status, detail = _PAYMENT_STATUS.get((payment.status, payment.status_detail), ("approved", "accredited"))
    amount = payment.paid_amount if payment.paid_amount is not None else payment.amount
    refunded = sum((r.amount for r in refunds if r.status == "processed"), Decimal("0"))
    return {
        "id": payment.reference_id,
        "date_created": payments_date(payment.date_created),
        "date_approved": payments_date(payment.date_approved),
        "date_last_updated": payments_date(payment.date_last_updated),
        "status": status,
        "status_detail": detail,
        "currency_id": CURRENCY,
        "transaction_amount": payment_number(amount),
        "transaction_amount_refunded": payment_number(refunded),
        "description": order.description or None,
        "external_reference": order.external_reference,
        "payment_method_id": PAYMENT_METHOD["id"],
        "payment_type_id": PAYMENT_METHOD["type"],
        "operation_type": "regular_payment",
        "installments": PAYMENT_METHOD["installments"],
        "collector_id": int(order.user_id) if order.user_id.isdigit() else order.user_id,
        "live_mode": False,
        "refunds": [
            {
                "id": r.reference_id,
                "payment_id": payment.reference_id,
                "amount": payment_number(r.amount),
                "status": _REFUND_STATUS.get(r.status, r.status),
                "date_created": payments_date(r.created_date),
            }
            for r in refunds
        ],
    }
