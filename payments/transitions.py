"""The payment status rules, in one place: which status may follow which, and what Mercado Pago's words mean.

Checkout, applying Mercado Pago's view of an order, refunds and review all move a payment through
`can_move`, and read Mercado Pago's orders through `interpret_order`; nothing else decides a status.

    pending --> approved | rejected | expired | cancelled
    rejected --> approved | expired | cancelled          (a declined buyer may still pay, or the QR end)
    expired | cancelled --> approved                     (money for a QR we gave up: it still came in)
    approved --> partially_refunded | refunded | charged_back
    partially_refunded --> refunded | charged_back
    refunded --> charged_back

Once money came in, a payment only moves forward, and `partially_refunded` / `refunded` come only from
refunds Mercado Pago confirmed (never from a refund still in progress, never from the order's status alone).
A chargeback is its own status: it is never taken for a refund.
"""

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from orders.models import MAX_MONEY
from payments.models import Payment

Status = Payment.Status

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.APPROVED, Status.REJECTED, Status.EXPIRED, Status.CANCELLED}),
    Status.REJECTED: frozenset({Status.APPROVED, Status.EXPIRED, Status.CANCELLED}),
    Status.EXPIRED: frozenset({Status.APPROVED}),
    Status.CANCELLED: frozenset({Status.APPROVED}),
    Status.APPROVED: frozenset({Status.PARTIALLY_REFUNDED, Status.REFUNDED, Status.CHARGED_BACK}),
    Status.PARTIALLY_REFUNDED: frozenset({Status.REFUNDED, Status.CHARGED_BACK}),
    Status.REFUNDED: frozenset({Status.CHARGED_BACK}),
    Status.CHARGED_BACK: frozenset(),
}
# The money (or what is left of it) is with us.
MONEY_HELD = frozenset({Status.APPROVED, Status.PARTIALLY_REFUNDED})
# Money came in at some point, whatever happened to it since.
MONEY_TAKEN = MONEY_HELD | {Status.REFUNDED, Status.CHARGED_BACK}


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def status_after_refunds(*, paid: Decimal | None, refunded: Decimal) -> str:
    """What confirmed refunds make of a payment whose money came in."""
    if refunded <= 0:
        return Status.APPROVED
    return Status.REFUNDED if refunded >= (paid or Decimal("0")) else Status.PARTIALLY_REFUNDED


# --- Mercado Pago's words -------------------------------------------------------------------------

# An Orders API order's status, as far as the buyer's money goes. `processed` and `refunded` both mean the
# money came in (what was given back is read from the refunds, one by one); unknown words mean "not yet".
ORDER_STATUS = {
    "created": Status.PENDING,
    "action_required": Status.PENDING,
    "processing": Status.PENDING,
    "at_terminal": Status.PENDING,
    "processed": Status.APPROVED,
    "refunded": Status.APPROVED,
    "canceled": Status.CANCELLED,
    "cancelled": Status.CANCELLED,
    "expired": Status.EXPIRED,
    "failed": Status.REJECTED,
    "rejected": Status.REJECTED,
}
# A refund transaction's status: only these mean the money went back; only these mean it never will.
REFUND_CONFIRMED = frozenset({"processed", "approved", "refunded", "accredited"})
REFUND_FAILED = frozenset({"failed", "rejected", "canceled", "cancelled", "error"})


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    amount: Decimal | None
    status: str  # Mercado Pago's word, lower-cased

    @property
    def confirmed(self) -> bool:
        return self.status in REFUND_CONFIRMED

    @property
    def failed(self) -> bool:
        return self.status in REFUND_FAILED


@dataclass(frozen=True)
class ProviderChargeback:
    id: str
    status: str
    case_id: str


@dataclass(frozen=True)
class ProviderState:
    """What a Mercado Pago order says, in our vocabulary."""

    status: str  # PENDING, APPROVED (money came in), REJECTED, EXPIRED or CANCELLED
    paid_amount: Decimal | None
    payment_id: str
    payment_reference: str
    refunds: list[ProviderRefund] = field(default_factory=list)
    chargebacks: list[ProviderChargeback] = field(default_factory=list)
    mentions_refunds: bool = False  # its status or detail says refunded / partially_refunded

    @property
    def money_in(self) -> bool:
        return self.status == Status.APPROVED


def decimal_or_none(value) -> Decimal | None:
    try:
        if value in (None, "") or isinstance(value, bool):
            return None
        amount = Decimal(str(value))
        if not amount.is_finite() or abs(amount) > MAX_MONEY:
            return None  # not an amount our books can hold: treated as unknown (and so held for review)
        return amount.quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def _dicts(value) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def interpret_order(mp_order: dict) -> ProviderState:
    status = str(mp_order.get("status") or "").lower()
    detail = str(mp_order.get("status_detail") or "").lower()
    transactions = mp_order.get("transactions") if isinstance(mp_order.get("transactions"), dict) else {}
    payments = _dicts(transactions.get("payments"))
    first = payments[0] if payments else {}
    ours = ORDER_STATUS.get(status, Status.PENDING)
    stated = [v for v in (mp_order.get("total_paid_amount"), first.get("paid_amount")) if v not in (None, "")]
    if stated:
        paid = decimal_or_none(stated[0])  # stated but unreadable (or absurd): unknown, so never "to the cent"
    elif ours == Status.APPROVED:  # paid, with no paid amount given: what the order asked for
        paid = decimal_or_none(first.get("amount")) or decimal_or_none(mp_order.get("total_amount"))
    else:
        paid = None
    reference = first.get("reference_id") or ""
    if not reference and isinstance(first.get("reference"), dict):
        reference = first["reference"].get("id") or ""  # the shape notifications use
    refunds = [
        ProviderRefund(
            id=str(r["id"]), amount=decimal_or_none(r.get("amount")), status=str(r.get("status", "")).lower()
        )
        for r in _dicts(transactions.get("refunds"))
        if r.get("id")
    ]
    chargebacks = [
        ProviderChargeback(id=str(c["id"]), status=str(c.get("status", "")).lower(), case_id=str(c.get("case_id", "")))
        for c in _dicts(transactions.get("chargebacks"))
        if c.get("id")
    ]
    return ProviderState(
        status=ours,
        paid_amount=paid,
        payment_id=str(first.get("id") or ""),
        payment_reference=str(reference or ""),
        refunds=refunds,
        chargebacks=chargebacks,
        mentions_refunds="refunded" in (status, detail) or "partially_refunded" in (status, detail),
    )


def refunds_in_answer(mp_answer: dict) -> list[ProviderRefund]:
    """The refunds listed in Mercado Pago's answer to a refund request."""
    return interpret_order(mp_answer if isinstance(mp_answer, dict) else {}).refunds
