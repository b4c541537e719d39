"""Notifications (webhooks) from the simulated Mercado Pago, sent the way Mercado Pago documents them.

    POST {notification_url}?data.id=ORD...&type=order
    Content-Type: application/json
    x-request-id: <uuid4, new for every delivery>
    x-signature: ts=<ts>,v1=<HMAC-SHA256 hex of "id:<data.id lower-cased>;request-id:<x-request-id>;ts:<ts>;">

    {"action": "order.processed", "api_version": "v1", "application_id": "...", "date_created": "...",
     "id": "...", "live_mode": false, "type": "order", "user_id": "...", "data": {...order summary...}}

The body is a snapshot of the order taken when the event happens (a later GET may show a newer state, as
with the real thing). Sending happens after the database transaction commits, so whoever receives the
notification and reads the order back sees the new state; and in a background daemon thread, so the request
that caused the event (often a single-threaded worker) answers first and can then take the webhook.

Like Mercado Pago, delivery is at-least-once: failures (non-2xx or no connection) are re-sent with backoff,
duplicates can be asked for, and nothing here ever raises into the caller; failures are logged.

Tests swap the transport (`deliver`) and set `SEND_IN_BACKGROUND = False` to send synchronously.
"""

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.simulator import shapes
from payments.simulator.models import SimOrder

logger = logging.getLogger(__name__)

# False: send in the calling thread (tests). True: one daemon thread per delivery (several copies race, as
# Mercado Pago's duplicate deliveries do).
SEND_IN_BACKGROUND = True
# Waits before the 2nd, 3rd and 4th attempt of one delivery. Mercado Pago retries for days (every 15 minutes
# and then less often); the simulator keeps it short and bounded so a dead receiver costs seconds, not threads.
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0  # Mercado Pago allows 22 s; a receiver that needs more is broken anyway

ACTIONS = ("order.processed", "order.failed", "order.canceled", "order.expired", "order.refunded")


def deliver(url: str, headers: dict[str, str], body: bytes) -> int:
    """One HTTP delivery: POST `body` to `url`; returns the status code, raises on connection errors.

    The module's only network access; tests replace it (monkeypatch `payments.simulator.notify.deliver`).
    """
    response = requests.post(
        url, data=body, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False
    )
    return response.status_code


def sign(*, data_id: str, request_id: str, ts: str, secret: str) -> str:
    """The x-signature v1 value: HMAC-SHA256 of the documented manifest, trailing ';' included. data.id is
    lower-cased when alphanumeric, which order ids (ORD...) always are."""
    data_id = data_id.lower() if data_id.isalnum() else data_id
    manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"
    return hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()


def target_url(notification_url: str, order_id: str) -> str:
    """The notification URL with Mercado Pago's query string appended (`data.id` first, then `type`)."""
    separator = "&" if "?" in notification_url else "?"
    return notification_url + separator + urlencode({"data.id": order_id, "type": "order"})


def notification_body(order: SimOrder, action: str) -> dict:
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


def queue_order_notification(
    order: SimOrder, action: str, *, duplicates: int = 0, delay_s: float = 0, signature_ts: str = "ms"
) -> None:
    """Send the notification of `action` about `order` once the current transaction commits.

    `duplicates` extra copies are sent as separate deliveries (each its own x-request-id and signature);
    `delay_s` is waited before sending; `signature_ts` "ms" or "s" is the unit of the signature's ts.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown notification action {action!r}")
    if not order.notification_url:
        logger.info("mp-simulator: no notification URL for order %s, %s not sent", order.id, action)
        return
    url = target_url(order.notification_url, order.id)
    body = json.dumps(notification_body(order, action), separators=(",", ":")).encode()
    order_id = order.id

    def start() -> None:
        for copy in range(1 + duplicates):
            args = (url, order_id, action, body, delay_s, signature_ts, copy)
            if SEND_IN_BACKGROUND:
                threading.Thread(target=_send, args=args, name=f"mp-sim-notify-{order_id}", daemon=True).start()
            else:
                _send(*args)

    transaction.on_commit(start)


def _send(url: str, order_id: str, action: str, body: bytes, delay_s: float, signature_ts: str, copy: int) -> None:
    """One delivery with its retries. Never raises: this runs where nobody could handle an exception."""
    try:
        if delay_s:
            time.sleep(delay_s)
        # One x-request-id per delivery (retries of it included); ts is when it is (first) sent.
        request_id = str(uuid.uuid4())
        now = time.time()
        ts = str(int(now * 1000) if signature_ts == "ms" else int(now))
        headers = {
            "Content-Type": "application/json",
            "x-request-id": request_id,
            "x-signature": f"ts={ts},v1={sign(data_id=order_id, request_id=request_id, ts=ts, secret=_secret())}",
        }
        for attempt, wait in enumerate((0.0, *RETRY_DELAYS), start=1):
            if wait:
                time.sleep(wait)
            try:
                status = deliver(url, headers, body)
            except Exception as exc:  # connection refused, timeout, DNS... all mean "try again later"
                logger.warning(
                    "mp-simulator: %s for %s (copy %d, attempt %d) to %s failed: %s",
                    action, order_id, copy, attempt, url, exc,
                )  # fmt: skip
                continue
            if 200 <= status < 300:
                logger.info("mp-simulator: %s for %s delivered (copy %d, HTTP %d)", action, order_id, copy, status)
                return
            logger.warning(
                "mp-simulator: %s for %s (copy %d, attempt %d) answered HTTP %d",
                action,
                order_id,
                copy,
                attempt,
                status,
            )
        logger.error("mp-simulator: gave up sending %s for %s (copy %d) to %s", action, order_id, copy, url)
    except Exception:
        logger.exception("mp-simulator: unexpected error sending %s for %s", action, order_id)


def _secret() -> str:
    return settings.MERCADOPAGO_WEBHOOK_SECRET
