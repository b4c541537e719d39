"""Refunds through Mercado Pago: this is where a refund is made, followed and confirmed.

Mercado Pago refunds asynchronously: its answer to the refund call is "taken, in progress" (or
`refund_in_progress`: retry later), and the refund is confirmed later, by a notification and the order read
back. So a refund row is `requested` (asked, answer not known) -> `pending` (Mercado Pago's refund id known)
-> `succeeded` (confirmed) | `failed`. Until it is confirmed or failed its amount stays reserved; only
confirmed refunds make a payment `partially_refunded` / `refunded`. Refunds are matched to Mercado Pago's
by Mercado Pago's refund id, never by amount or by recency.

Idempotency across failures: every attempt of a refund row sends the same request with the same
X-Idempotency-Key, and the caller's Idempotency-Key is bound to the row (`request_key`), so a retry after a
5xx or a timeout continues that refund instead of making a second one.
"""

import hashlib
import logging
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext, gettext_noop

from kiosk.problems import DomainError
from orders.models import MAX_MONEY, Order
from payments.gateway import GatewayError, GatewayRejected, gateway
from payments.models import Payment, PaymentEvent, Refund
from payments.selectors import REFUNDS_HOLDING, refundable_amount
from payments.services.ledger import Note, english, flag_for_review, follow_confirmed_refunds, note, record_event
from payments.transitions import MONEY_HELD, ProviderRefund, ProviderState, refunds_in_answer

logger = logging.getLogger("payments")
Event = PaymentEvent.Type
RefundStatus = Refund.Status

# Mercado Pago's "not now" answers to a refund (documented for the Orders API): the row is retried later
# with the same key, it has not failed.
RETRY_LATER_CODES = {"refund_in_progress", "movement_operations_pending", "idempotency_validation_failed"}
# A refund call whose outcome we do not know yet is not retried by reconcile before this lease runs out.
ATTEMPT_LEASE = timedelta(seconds=60)
MAX_RETRY_DELAY = timedelta(minutes=15)
FLAG_AFTER_ATTEMPTS = 10
MAX_REASON_LENGTH = 500
# The reason of a refund the system makes by itself (a Note: stored in the restaurant's language).
AUTOMATIC_REASON = gettext_noop("Automatic: money for an order that was cancelled or already paid")


class RefundNotAllowed(DomainError):
    status = 409
    code = "refund_not_allowed"


class RefundAmountInvalid(DomainError):
    status = 400
    code = "refund_amount_invalid"


class RefundKeyReused(DomainError):
    status = 422
    code = "idempotency_key_reused"


def amount_in_cents(value) -> Decimal:
    """An amount as asked: a finite decimal with at most two places, within what the books can hold."""
    try:
        amount = Decimal(str(value))
        exact = amount.is_finite() and abs(amount) <= MAX_MONEY and amount == amount.quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        exact = False
    if not exact:
        raise RefundAmountInvalid(gettext("'%(value)s' is not an amount such as 10.00.") % {"value": value})
    return amount.quantize(Decimal("0.01"))


def request_key_for(*, caller: str, key: str) -> str:
    """What binds a caller's Idempotency-Key to a refund row (hashed: keys may be long)."""
    return hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()


# --- Asking ---------------------------------------------------------------------------------------


def refund_request(
    *, payment_id, amount: Decimal | None, reason: str | Note, actor: str, request_key: str | None = None
) -> Refund:
    """Gives money back through Mercado Pago: all that is refundable by default, or part of it.

    The amount is checked and reserved under row locks, then Mercado Pago is asked (outside any
    transaction) with the refund's own idempotency key. Returns the refund: `pending` or `succeeded` when
    Mercado Pago took it, `requested` when it said "retry later" (reconcile_payments does). Raises
    GatewayRejected when Mercado Pago refuses it (the refund is then `failed`) and GatewayUnavailable when
    it does not answer (the refund stays `requested`, reserved, and is retried with the same key; the
    exception's `refund_id` names it).
    With `request_key`, a second call continues the refund the first one made. A person's `reason` is kept as
    typed; the system's (a Note) is written in the restaurant's language.
    """
    note_reason, reason = reason, str(reason) if isinstance(reason, Note) else reason
    if not reason or not reason.strip():
        raise RefundAmountInvalid(gettext("A refund needs a reason."))
    if len(reason) > MAX_REASON_LENGTH:
        raise RefundAmountInvalid(
            gettext("A refund's reason has at most %(most)d characters.") % {"most": MAX_REASON_LENGTH}
        )
    amount = None if amount is None else amount_in_cents(amount)
    if request_key:
        earlier = Refund.objects.filter(request_key=request_key).first()
        if earlier is not None:
            return _continue(earlier, payment_id=payment_id, amount=amount, reason=note_reason)
    with transaction.atomic():
        order_id = Payment.objects.values_list("order_id", flat=True).get(pk=payment_id)
        Order.objects.select_for_update().get(pk=order_id)
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.provider == Payment.Provider.COUNTER:
            raise RefundNotAllowed(
                gettext(
                    "Payment %(payment)s was taken at the counter (%(method)s): it never went through Mercado Pago, "
                    "so give the money back at the counter."
                )
                % {"payment": payment.pk, "method": payment.get_method_display()}
            )
        if payment.status not in MONEY_HELD or not payment.provider_order_id:
            raise RefundNotAllowed(
                gettext("Payment %(payment)s is '%(status)s': there is no money to give back.")
                % {"payment": payment.pk, "status": payment.get_status_display()}
            )
        refundable = refundable_amount(payment)
        asked = amount  # None: everything refundable
        amount = refundable if asked is None else asked
        if amount <= 0 or amount > refundable:
            raise RefundAmountInvalid(
                gettext("Refund must be between %(least)s and %(most)s; asked for %(amount)s.")
                % {
                    "least": number_format(Decimal("0.01"), 2),
                    "most": number_format(refundable, 2),
                    "amount": number_format(amount, 2),
                }
            )
        nothing_refunded_yet = not payment.refunds.exclude(status=RefundStatus.FAILED).exists()
        try:
            with transaction.atomic():
                refund = Refund.objects.create(
                    payment=payment,
                    amount=amount,
                    requested_amount=asked,
                    full=nothing_refunded_yet and amount == payment.paid_amount,
                    reason=reason.strip(),
                    requested_by=actor,
                    request_key=request_key,
                    next_attempt_at=timezone.now() + ATTEMPT_LEASE,
                )
        except IntegrityError:
            refund = None  # the same request_key, a moment ago: continue that one (below, unlocked)
        if refund is not None:
            record_event(
                payment,
                Event.REFUND_REQUESTED,
                amount=amount,
                message=note_reason if isinstance(note_reason, Note) else reason.strip(),
                actor=actor,
                provider_reference=refund.idempotency_key,
            )
    if refund is None:
        return _continue(
            Refund.objects.get(request_key=request_key), payment_id=payment_id, amount=asked, reason=note_reason
        )
    return refund_attempt(refund_id=refund.pk)


def _continue(refund: Refund, *, payment_id, amount, reason: str | Note) -> Refund:
    """The same request again (`amount` in cents, or None) continues its refund; another is refused. The system's
    reason is the same in the restaurant's language or in English (a refund it asked for before it wrote it so)."""
    if (
        str(refund.payment_id) != str(payment_id)
        or amount != refund.requested_amount
        or refund.reason not in {str(reason).strip(), english(reason).strip()}
    ):
        raise RefundKeyReused(
            gettext("This Idempotency-Key was already used for another refund; use a new key for a new refund.")
        )
    return refund_attempt(refund_id=refund.pk)


def refund_attempt(*, refund_id) -> Refund:
    """Asks Mercado Pago (again) for a `requested` refund, with the same key and the same request; any
    other refund is returned as it is. The same contract as `refund_request`."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status != RefundStatus.REQUESTED:
        return refund
    Refund.objects.filter(pk=refund.pk).update(
        attempts=F("attempts") + 1, next_attempt_at=timezone.now() + ATTEMPT_LEASE
    )
    payment = refund.payment
    try:
        answer = gateway().refund_order(
            payment.provider_order_id,
            idempotency_key=refund.idempotency_key,
            transaction_id=payment.provider_payment_id,
            amount=None if refund.full else refund.amount,
        )
    except GatewayRejected as exc:
        if exc.code in RETRY_LATER_CODES:
            return _retry_later(refund.pk, note(gettext_noop("Mercado Pago: %(error)s"), error=exc.message), exc.body)
        _fail(refund.pk, exc.message, exc.body)
        raise
    except GatewayError as exc:
        why = note(gettext_noop("Mercado Pago did not answer: %(error)s"), error=exc.message)
        _retry_later(refund.pk, why, exc.body)
        exc.refund_id = refund.pk
        raise
    return _record_answer(refund.pk, answer)


def _locked(refund_id) -> tuple[Order, Payment, Refund]:
    """The refund's order, payment and refund rows, locked in that order."""
    order_id, payment_id = Refund.objects.values_list("payment__order_id", "payment_id").get(pk=refund_id)
    order = Order.objects.select_for_update().get(pk=order_id)
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    return order, payment, Refund.objects.select_for_update().get(pk=refund_id)


def _refund_line(refund: Refund, why: str | Note) -> Note:
    """A ledger line about one refund: "refund 12: <why>" (Mercado Pago's own words in it as they are)."""
    return note(gettext_noop("refund %(refund)s: %(why)s"), refund=refund.pk, why=why)


def _retry_later(refund_id, why: Note, body) -> Refund:
    """`why` goes to the ledger in the restaurant's language, and to the refund's `error` (an API field) in English."""
    with transaction.atomic():
        _, payment, refund = _locked(refund_id)
        if refund.status == RefundStatus.REQUESTED:
            _reschedule(payment, refund, why, body)
    return refund


def _reschedule(payment: Payment, refund: Refund, why: Note, body) -> None:
    """The refund is asked again later, less often each time; a person looks after FLAG_AFTER_ATTEMPTS tries.
    Rows locked by the caller."""
    delay = min(MAX_RETRY_DELAY, timedelta(seconds=30 * 2 ** min(refund.attempts, 10)))
    refund.error, refund.next_attempt_at = english(why), timezone.now() + delay
    refund.save(update_fields=["error", "next_attempt_at", "updated_at"])
    record_event(payment, Event.REFUND_RETRY, amount=refund.amount, message=_refund_line(refund, why), payload=body)
    if refund.attempts >= FLAG_AFTER_ATTEMPTS:  # >=: overlapping tries or a killed one may skip a count
        _flag_once(
            payment,
            note(
                gettext_noop("Refund %(refund)s still not taken by Mercado Pago after %(attempts)s tries."),
                refund=refund.pk,
                attempts=refund.attempts,
            ),
            key=f"refund-{refund.pk}-not-taken",
        )


def _fail(refund_id, why: str, body) -> None:
    with transaction.atomic():
        _, payment, refund = _locked(refund_id)
        if refund.status != RefundStatus.REQUESTED:
            return
        refund.status, refund.error, refund.next_attempt_at = RefundStatus.FAILED, why, None
        refund.save()
        record_event(
            payment, Event.REFUND_FAILED, amount=refund.amount, message=_refund_line(refund, why), payload=body
        )


def _record_answer(refund_id, answer: dict) -> Refund:
    """Mercado Pago took the refund: bind our row to the refund its answer names."""
    with transaction.atomic():
        order, payment, refund = _locked(refund_id)
        if refund.status != RefundStatus.REQUESTED:
            return refund  # another attempt recorded it first
        listed = refunds_in_answer(answer)
        bound_elsewhere = set(
            Refund.objects.filter(provider_refund_id__in=[r.id for r in listed])
            .exclude(pk=refund.pk)
            .values_list("provider_refund_id", flat=True)
        )
        candidates = [r for r in listed if r.id not in bound_elsewhere]
        if len(candidates) != 1:
            # Taken, but the answer does not name exactly one refund we could call ours: ask again later with
            # the same key (Mercado Pago replays its answer), never guess by amount or recency.
            why = note(
                gettext_noop("Mercado Pago's answer names %(count)s new refunds; asking again"), count=len(candidates)
            )
            _reschedule(payment, refund, why, answer)
            return refund
        mine = candidates[0]
        refund.provider_refund_id, refund.status, refund.error = mine.id, RefundStatus.PENDING, ""
        refund.next_attempt_at = None
        refund.save()
        record_event(
            payment,
            Event.REFUND_ACCEPTED,
            amount=mine.amount or refund.amount,
            message=note(
                gettext_noop("refund %(refund)s taken by Mercado Pago as %(id)s (%(status)s)"),
                refund=refund.pk,
                id=mine.id,
                status=mine.status or note(gettext_noop("no status")),
            ),
            payload=answer,
            provider_reference=mine.id,
        )
        _follow(payment, refund, mine, payload=answer)
        follow_confirmed_refunds(
            order, payment, payload=answer, message=note(gettext_noop("refund %(refund)s"), refund=refund.pk)
        )
    return refund


# --- Following what Mercado Pago reports ----------------------------------------------------------


def _follow(payment: Payment, refund: Refund, reported: ProviderRefund, *, payload) -> None:
    """Moves our refund row to what Mercado Pago reports of its refund (rows locked; saved here)."""
    refund.provider_status = reported.status[:30]
    if reported.amount is not None and reported.amount > refund.amount and refund.status != RefundStatus.SUCCEEDED:
        room = refundable_amount(payment) + (refund.amount if refund.status in REFUNDS_HOLDING else Decimal("0"))
        if reported.amount > room:
            # More than is left of the payment: not money Mercado Pago can have given back, but an answer we
            # cannot believe. Our amount stays (the books never give back more than was paid); a person looks.
            _flag_once(
                payment,
                note(
                    gettext_noop(
                        "Refund %(refund)s asked for %(amount)s; Mercado Pago reports %(reported)s, more than the "
                        "%(room)s left of the payment: kept at %(amount)s, check Mercado Pago's panel."
                    ),
                    refund=refund.pk,
                    amount=refund.amount,
                    reported=reported.amount,
                    room=room,
                ),
                key=f"refund-{refund.pk}-beyond-paid-{reported.amount}",
            )
            reported = ProviderRefund(id=reported.id, amount=refund.amount, status=reported.status)
    if reported.amount is not None and reported.amount != refund.amount and refund.status != RefundStatus.SUCCEEDED:
        # The ledger records what Mercado Pago refunded. For a full refund that is "whatever was left";
        # for a partial one a difference is odd enough for a person to look.
        if not refund.full:
            flag_for_review(
                payment,
                note(
                    gettext_noop("Refund %(refund)s asked for %(amount)s; Mercado Pago refunded %(refunded)s."),
                    refund=refund.pk,
                    amount=refund.amount,
                    refunded=reported.amount,
                ),
            )
        refund.amount = reported.amount
    if reported.confirmed and refund.status == RefundStatus.FAILED and refund.amount > refundable_amount(payment):
        # Reported failed before, processed now; its amount was refundable again and has been refunded since
        # (or held). Booking it would give back more than was paid: it stays failed and a person looks.
        _flag_once(
            payment,
            note(
                gettext_noop(
                    "Mercado Pago now reports refund %(refund)s (%(amount)s) processed, after reporting it failed; "
                    "its amount has been refunded or reserved again since: check Mercado Pago's panel."
                ),
                refund=refund.pk,
                amount=refund.amount,
            ),
            key=f"refund-{refund.pk}-processed-after-failed",
        )
    elif reported.confirmed and refund.status != RefundStatus.SUCCEEDED:
        refund.status, refund.error, refund.confirmed_at = RefundStatus.SUCCEEDED, "", timezone.now()
        record_event(
            payment,
            Event.REFUND_SUCCEEDED,
            amount=refund.amount,
            message=note(gettext_noop("refund %(refund)s confirmed by Mercado Pago"), refund=refund.pk),
            payload=payload,
            provider_reference=refund.provider_refund_id,
            actor="mercadopago",
        )
    elif reported.failed and refund.status in (RefundStatus.REQUESTED, RefundStatus.PENDING):
        why = note(gettext_noop("Mercado Pago reports the refund %(status)s"), status=reported.status)
        refund.status, refund.error = RefundStatus.FAILED, english(why)
        record_event(
            payment,
            Event.REFUND_FAILED,
            amount=refund.amount,
            message=note(
                gettext_noop("refund %(refund)s: %(why)s; its amount is refundable again"), refund=refund.pk, why=why
            ),
            payload=payload,
            provider_reference=refund.provider_refund_id,
            actor="mercadopago",
        )
    refund.save()


def _flag_once(payment: Payment, reason: Note, *, key: str) -> None:
    """Flags the payment for review, once per `key` however often Mercado Pago repeats what caused it."""
    if record_event(payment, Event.REVIEW_FLAGGED, message=reason, provider_reference=key) is not None:
        flag_for_review(payment, reason)
        payment.save(update_fields=["needs_review", "review_reason", "updated_at"])


def apply_provider_refunds(order: Order, payment: Payment, state: ProviderState, *, payload) -> None:
    """Refunds listed in a Mercado Pago order (ours, or made in its own panel) enter our books, each once,
    by its id, and move as Mercado Pago reports them. Order and payment rows locked by the caller."""
    awaiting_answer = payment.refunds.filter(status=RefundStatus.REQUESTED).exists()
    # Failures first: a refund reported processed is judged against what is left once every refund this
    # answer reports failed has given its amount back, whatever order Mercado Pago lists them in.
    for reported in sorted(state.refunds, key=lambda reported: not reported.failed):
        refund = Refund.objects.select_for_update().filter(provider_refund_id=reported.id).first()
        if refund is None:
            if awaiting_answer or reported.failed or reported.amount is None:
                # While one of our requests has no answer, an unknown refund may be that one: the retry of
                # the request (same key) will name it. Until then it is not booked twice.
                continue
            amount = reported.amount
            room = refundable_amount(payment)
            if amount > room:
                # Mercado Pago cannot have given back more than is left of the payment: our books keep at most
                # what is left, and a person checks its panel.
                _flag_once(
                    payment,
                    note(
                        gettext_noop(
                            "Mercado Pago reports refund %(id)s of %(amount)s, more than the %(room)s left of the "
                            "payment: booked as %(room)s, check Mercado Pago's panel."
                        ),
                        id=reported.id,
                        amount=reported.amount,
                        room=room,
                    ),
                    key=f"refund-{reported.id}-beyond-paid-{reported.amount}",
                )
                if room <= 0:
                    continue
                amount = room
                reported = ProviderRefund(id=reported.id, amount=amount, status=reported.status)
            refund = Refund.objects.create(
                payment=payment,
                amount=amount,
                reason=str(note(gettext_noop("Refund made at Mercado Pago"))),
                requested_by="mercadopago",
                provider_refund_id=reported.id,
                status=RefundStatus.PENDING,
            )
            record_event(
                payment,
                Event.REFUND_ACCEPTED,
                amount=amount,
                message=note(
                    gettext_noop("refund %(id)s made outside this system (Mercado Pago's panel)"), id=reported.id
                ),
                payload=payload,
                provider_reference=reported.id,
                actor="mercadopago",
            )
        if refund.payment_id == payment.pk:
            _follow(payment, refund, reported, payload=payload)
    follow_confirmed_refunds(
        order, payment, payload=payload, message=note(gettext_noop("refunds reported by Mercado Pago"))
    )
    confirmed = any(reported.confirmed for reported in state.refunds)
    if state.mentions_refunds and not confirmed and not payment.refunds.exclude(status=RefundStatus.FAILED).exists():
        record = record_event(
            payment,
            Event.REVIEW_FLAGGED,
            message=note(gettext_noop("Mercado Pago's order says refunded but lists no refund")),
            provider_reference=f"unlisted-refund-{payment.provider_status}-{payment.provider_status_detail}",
        )
        if record is not None:
            flag_for_review(
                payment,
                note(
                    gettext_noop("Mercado Pago's order says refunded but lists no confirmed refund: check its panel.")
                ),
            )
            payment.save()


def refund_automatically(*, payment_id) -> Refund | None:
    """Gives back everything of a payment that must not be kept (paid for a cancelled or already paid
    order). Bound to the payment, so however often it is triggered there is one automatic refund."""
    try:
        return refund_request(
            payment_id=payment_id,
            amount=None,
            reason=note(AUTOMATIC_REASON),
            actor="system",
            request_key=request_key_for(caller="system", key=f"automatic-refund-{payment_id}"),
        )
    except (GatewayError, DomainError) as exc:
        logger.error("automatic refund of payment %s not done yet: %s", payment_id, exc)
        return None


def refunds_retry_due(*, now=None, limit: int = 100) -> int:
    """Asks Mercado Pago again for refunds still `requested` whose time has come. Returns how many tried."""
    now = now or timezone.now()
    due = Refund.objects.filter(status=RefundStatus.REQUESTED, next_attempt_at__lte=now).order_by("next_attempt_at")
    tried = 0
    for refund_id in list(due.values_list("pk", flat=True)[:limit]):
        try:
            refund_attempt(refund_id=refund_id)
        except (GatewayError, DomainError) as exc:
            logger.warning("refund %s not done yet: %s", refund_id, exc)
        tried += 1
    return tried
