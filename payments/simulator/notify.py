"""Notifications (webhooks) from the simulated Mercado Pago, sent the way Mercado Pago documents them, and when.

What is sent. Orders API notifications, for every change of an order (processed, failed, canceled, expired
when settled through `simulate`, refunded, charged back):

    POST {notification_url}?data.id=ORD...&type=order
    Content-Type: application/json
    x-request-id: <uuid4, one per delivery; the retries of a delivery keep it>
    x-signature: ts=<ts>,v1=<HMAC-SHA256 hex of "id:<data.id>;request-id:<x-request-id>;ts:<ts>;">

    {"action": "order.processed", "api_version": "v1", "application_id": "...", "date_created": "...",
     "id": "...", "live_mode": false, "type": "order", "user_id": "...", "data": {...order summary...}}

and Payments API webhooks (only for a chargeback, which changes the payment's status in the Payments API):

    POST {notification_url}?data.id=<numeric payment id>&type=payment
    {"id": ..., "live_mode": false, "type": "payment", "date_created": "...", "user_id": ...,
     "api_version": "v1", "action": "payment.updated", "data": {"id": "<numeric payment id>"}}

The signature is made as the official SDKs check it (sdk-python's `WebhookSignatureValidator`): `data.id`
exactly as it is in the query string (upper-case ORD... ids are not lower-cased), `ts` in milliseconds or
in seconds (the docs show both; `signature_ts` chooses), secret settings.MERCADOPAGO_WEBHOOK_SECRET.

When. Never inside the call that caused it. `queue_order_notification` / `queue_payment_notification` write
rows (SimNotification) in the caller's database transaction, so a rollback drops them; the body is a
snapshot of the resource at that moment (a later GET may show a newer state, as with the real thing). Each
row is due settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY seconds later (or `delay_s`). `send_due` sends what
is due, outside any transaction: the pump thread (pump.py) calls it every ~0.2 s when
MERCADOPAGO_SIMULATOR_AUTOPUMP is on; tests call it themselves (`everything=True` ignores due times).

Like Mercado Pago, delivery is at-least-once: a failed attempt (non-2xx or no connection) is re-sent with
the same x-request-id after a short bounded backoff (RETRY_DELAYS; Mercado Pago itself retries for days),
and the row is marked failed after MAX_ATTEMPTS; duplicates can be asked for (separate rows, separate
request ids). Claiming a row is a conditional UPDATE, so two pumps (threads or processes) never send the
same attempt. Nothing here raises into the sender; failures are logged.

The module's only network access is `deliver`; tests replace it.
"""

import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import timedelta
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from payments.simulator import pump, shapes
from payments.simulator.models import SimNotification, SimOrder, SimPayment

logger = logging.getLogger(__name__)

# Waits before the 2nd, 3rd and 4th attempt of one delivery; after MAX_ATTEMPTS it is marked failed.
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS)
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0  # Mercado Pago allows 22 s; a receiver that needs more is broken anyway
# How long a claimed row belongs to its sender; past it, a sender that died is taken over (the row is sent
# again, with the same request id). Longer than one attempt can take.
LEASE = timedelta(seconds=30)

ACTIONS = ("order.processed", "order.failed", "order.canceled", "order.expired", "order.refunded")
PAYMENT_ACTIONS = ("payment.created", "payment.updated")
SIGNATURE_UNITS = ("ms", "s")


def deliver(url: str, headers: dict[str, str], body: bytes) -> int:
    """One HTTP delivery: POST `body` to `url`; returns the status code, raises on connection errors.

    The module's only network access; tests replace it (monkeypatch `payments.simulator.notify.deliver`).
    """
    response = requests.post(
        url, data=body, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False
    )
    return response.status_code


def sign(*, data_id: str, request_id: str, ts: str, secret: str) -> str:
    """The x-signature v1 value: HMAC-SHA256 (hex) of the manifest, trailing ';' included, with `data_id`
    exactly as given (as the official SDKs build it: no lower-casing)."""
    manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"
    return hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()


def target_url(notification_url: str, data_id: str, topic: str = "order") -> str:
    """The notification URL with Mercado Pago's query string appended (`data.id` first, then `type`)."""
    separator = "&" if "?" in notification_url else "?"
    return notification_url + separator + urlencode({"data.id": data_id, "type": topic})


def notification_body(order: SimOrder, action: str) -> dict:
    """An Orders API notification about `order` as it is now."""
    return {
        "action": action,
        "api_version": "v1",
        "application_id": order.application_id,
        "date_created": shapes.orders_date(timezone.now()),
        "id": str(shapes.new_numeric_id()),
        "live_mode": False,
        "type": "order",
        "user_id": order.user_id,
        "data": shapes.notification_data(order),
    }


def payment_notification_body(payment: SimPayment, action: str) -> dict:
    """A Payments API webhook about `payment` (it only names the payment: the receiver reads it back)."""
    user_id = payment.order.user_id
    return {
        "id": shapes.new_numeric_id(),
        "live_mode": False,
        "type": "payment",
        "date_created": shapes.payments_date(timezone.now()),
        "user_id": int(user_id) if user_id.isdigit() else user_id,
        "api_version": "v1",
        "action": action,
        "data": {"id": str(payment.reference_id)},
    }


def queue_order_notification(
    order: SimOrder, action: str, *, duplicates: int = 0, delay_s: float | None = None, signature_ts: str = "ms"
) -> list[SimNotification]:
    """Queue the Orders API notification of `action` about `order`, in the current transaction.

    `duplicates` extra copies are separate deliveries (each its own x-request-id and signature), all due at
    once; due `delay_s` seconds from now (default settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY);
    `signature_ts` "ms" or "s" is the unit of the signature's ts. Returns the rows (none without a URL).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown notification action {action!r}")
    if not order.notification_url:
        logger.info("mp-simulator: no notification URL for order %s, %s not sent", order.id, action)
        return []
    url = target_url(order.notification_url, order.id, "order")
    return _queue(url, "order", action, order.id, notification_body(order, action), duplicates, delay_s, signature_ts)


def queue_payment_notification(
    payment: SimPayment,
    action: str = "payment.updated",
    *,
    duplicates: int = 0,
    delay_s: float | None = None,
    signature_ts: str = "ms",
) -> list[SimNotification]:
    """Queue a Payments API webhook (`?data.id=<payment id>&type=payment`) about the buyer's payment of a QR
    order, in the current transaction; the options are as for `queue_order_notification`."""
    if action not in PAYMENT_ACTIONS:
        raise ValueError(f"unknown notification action {action!r}")
    if payment.reference_id is None:
        raise ValueError(f"{payment.id} has no Payments API id: the buyer never tried to pay")
    order = payment.order
    if not order.notification_url:
        logger.info("mp-simulator: no notification URL for order %s, %s not sent", order.id, action)
        return []
    data_id = str(payment.reference_id)
    url = target_url(order.notification_url, data_id, "payment")
    body = payment_notification_body(payment, action)
    return _queue(url, "payment", action, data_id, body, duplicates, delay_s, signature_ts)


def _queue(url, topic, action, data_id, body, duplicates, delay_s, signature_ts) -> list[SimNotification]:
    if signature_ts not in SIGNATURE_UNITS:
        raise ValueError(f"signature_ts must be 'ms' or 's', not {signature_ts!r}")
    now = timezone.now()
    delay = settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY if delay_s is None else delay_s
    text = json.dumps(body, separators=(",", ":"))
    rows = [
        SimNotification.objects.create(
            url=url,
            topic=topic,
            action=action,
            data_id=data_id,
            body=text,
            signature_ts=signature_ts,
            request_id=str(uuid.uuid4()),
            due_at=now + timedelta(seconds=delay),
            created_at=now,
        )
        for _ in range(1 + duplicates)
    ]
    transaction.on_commit(pump.wake)
    return rows


# --- Sending --------------------------------------------------------------------------------------


def headers_for(row: SimNotification) -> dict[str, str]:
    """The headers of one attempt: the row's request id, a signature with ts = now in the row's unit."""
    now = time.time()
    ts = str(int(now * 1000) if row.signature_ts == "ms" else int(now))
    v1 = sign(data_id=row.data_id, request_id=row.request_id, ts=ts, secret=settings.MERCADOPAGO_WEBHOOK_SECRET)
    return {"Content-Type": "application/json", "x-request-id": row.request_id, "x-signature": f"ts={ts},v1={v1}"}


def claim(row: SimNotification, now=None) -> bool:
    """Take `row` for one attempt: a conditional UPDATE that only one sender can win (the row must still be
    as this sender read it: same status and attempt count). On success `row` is updated in memory."""
    now = now or timezone.now()
    won = SimNotification.objects.filter(pk=row.pk, status=row.status, attempts=row.attempts).update(
        status=SimNotification.Status.SENDING, attempts=F("attempts") + 1, due_at=now + LEASE
    )
    if won:
        row.status, row.attempts, row.due_at = SimNotification.Status.SENDING, row.attempts + 1, now + LEASE
    return bool(won)


def send_due(*, now=None, everything: bool = False, only: str | None = None) -> int:
    """Send every notification that is due (all queued ones with `everything`, whatever their due time),
    one attempt each, in the order they became due; `only` keeps those whose action or topic it is.

    Call it outside any transaction: each row is claimed, sent and finished on its own. A failed attempt
    goes back to the queue, due after RETRY_DELAYS, or is marked failed after MAX_ATTEMPTS. Rows queued
    while this runs wait for the next call. Returns how many attempts were made. Never raises.
    """
    now = now or timezone.now()
    queued = Q(status=SimNotification.Status.QUEUED)
    due = Q(status=SimNotification.Status.SENDING, due_at__lte=now)  # a dead sender's lease is up
    due |= queued if everything else queued & Q(due_at__lte=now)
    rows = SimNotification.objects.filter(due)
    if only:
        rows = rows.filter(Q(action=only) | Q(topic=only))
    try:
        candidates = list(rows.order_by("due_at", "id"))
    except Exception:
        logger.exception("mp-simulator: could not read the notification queue")
        return 0
    attempts = 0
    for row in candidates:
        try:
            if claim(row, now):
                attempts += 1
                _attempt(row, now)
        except Exception:  # the database, most likely; the row's lease runs out and it is sent again later
            logger.exception("mp-simulator: could not send notification %s", row.pk)
    return attempts


def _attempt(row: SimNotification, now) -> None:
    """One attempt of a claimed row, then record how it went (unless another sender took the row over)."""
    error = ""
    try:
        status = deliver(row.url, headers_for(row), row.body.encode())
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except Exception as exc:  # connection refused, timeout, DNS... all mean "try again later"
        error = f"{type(exc).__name__}: {exc}"[:500]
    mine = SimNotification.objects.filter(pk=row.pk, status=SimNotification.Status.SENDING, attempts=row.attempts)
    if not error:
        mine.update(status=SimNotification.Status.SENT, sent_at=timezone.now(), last_error="")
        logger.info("mp-simulator: %s for %s delivered (%s)", row.action, row.data_id, row.request_id)
    elif row.attempts >= MAX_ATTEMPTS:
        mine.update(status=SimNotification.Status.FAILED, last_error=error)
        logger.error(
            "mp-simulator: gave up sending %s for %s (%s) to %s after %d attempts: %s",
            row.action, row.data_id, row.request_id, row.url, row.attempts, error,
        )  # fmt: skip
    else:
        retry_at = now + timedelta(seconds=RETRY_DELAYS[row.attempts - 1])
        mine.update(status=SimNotification.Status.QUEUED, due_at=retry_at, last_error=error)
        logger.warning(
            "mp-simulator: %s for %s (%s, attempt %d) to %s failed: %s",
            row.action, row.data_id, row.request_id, row.attempts, row.url, error,
        )  # fmt: skip


def pending() -> bool:
    """Whether any notification is still to be sent (queued, or being sent)."""
    waiting = [SimNotification.Status.QUEUED, SimNotification.Status.SENDING]
    return SimNotification.objects.filter(status__in=waiting).exists()
