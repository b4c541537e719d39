"""Sending events to subscribers: where an outgoing webhook is signed, sent, retried and given up.

Each delivery is one event for one endpoint, sent by the worker (task `deliver_event`) as a POST of the
envelope with `X-Kiosk-Event`, `X-Kiosk-Delivery` (the same on every attempt) and `X-Kiosk-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`. A 2xx answer delivers it; anything else, or no
answer within WEBHOOK_TIMEOUT, is retried with exponential backoff and jitter, and after WEBHOOK_MAX_ATTEMPTS
the delivery is dead (the admin shows it, with "send again").

One order's events reach an endpoint in sequence: a delivery waits while an earlier one of the same order and
endpoint is not delivered (pending or dead), and each success hands over to the next. Other orders' events
are not held up. At least once: a worker killed mid-send sends again after restart; subscribers deduplicate
on `event_id` (or X-Kiosk-Delivery).
"""

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from kiosk.events.models import DeliveryAttempt, EventDelivery
from kiosk.jobs import RetryPolicy, enqueue

logger = logging.getLogger("kiosk.events")
Status = EventDelivery.Status


# --- Signing --------------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# --- Where we may send (SSRF) ---------------------------------------------------------------------


class UrlNotAllowed(ValueError):
    pass


def _allowed_networks():
    return [ipaddress.ip_network(n, strict=False) for n in settings.WEBHOOK_ALLOWED_NETWORKS]


def check_url(url: str) -> None:
    """Refuses what a subscriber URL must not be: not http(s), credentials in it, or a host that resolves to
    a private, loopback, link-local or otherwise non-public address (unless WEBHOOK_ALLOWED_NETWORKS says)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UrlNotAllowed("The URL must start with http:// or https://.")
    if not parts.hostname:
        raise UrlNotAllowed("The URL has no host.")
    if parts.username or parts.password:
        raise UrlNotAllowed("The URL must not carry a user name or password.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise UrlNotAllowed(f"The host {parts.hostname!r} does not resolve ({exc}).") from None
    allowed = _allowed_networks()
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if any(address in network for network in allowed):
            continue
        if not address.is_global or address.is_multicast:
            raise UrlNotAllowed(
                f"The host {parts.hostname!r} resolves to {address}, a private, loopback or link-local address."
            )


# --- Sending --------------------------------------------------------------------------------------


def _policy() -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.WEBHOOK_MAX_ATTEMPTS, base_delay=settings.WEBHOOK_RETRY_BASE_SECONDS, max_delay=3600
    )


def _lease() -> timedelta:
    """How long a claimed delivery is its worker's: past it (the worker died mid-send), another may send it."""
    return timedelta(seconds=3 * settings.WEBHOOK_TIMEOUT + 5)


def _earlier_undelivered(delivery: EventDelivery) -> bool:
    """Is an earlier event of the same order still undelivered to this endpoint? (Rows locked: the answer
    waits for a delivery being recorded right now.)"""
    earlier = EventDelivery.objects.select_for_update().filter(
        endpoint_id=delivery.endpoint_id, order_id=delivery.order_id, sequence__lt=delivery.sequence
    )
    return any(status != Status.DELIVERED for status in earlier.values_list("status", flat=True))


def _claim(delivery_id: int) -> tuple[EventDelivery | None, str]:
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            EventDelivery.objects.select_for_update(skip_locked=True)
            .select_related("event", "endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return None, "in another worker's hands"
        if delivery.status != Status.PENDING:
            return None, f"already {delivery.status}"
        if delivery.locked_until and delivery.locked_until > now:
            # Perhaps by a worker that died: look again when its lease is over (a no-op if it was sent).
            enqueue(_task(), delivery.pk, delay=(delivery.locked_until - now).total_seconds() + 1)
            return None, "being sent by another worker"
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
            return None, "not due yet"
        if not delivery.endpoint.active:
            return None, "endpoint inactive"
        if _earlier_undelivered(delivery):
            return None, "waiting for an earlier event of the order"
        delivery.locked_until = now + _lease()
        delivery.save(update_fields=["locked_until"])
    return delivery, ""


def _post(delivery: EventDelivery) -> tuple[int | None, str, str, int]:
    """(status code or None, error, start of the answer, duration in ms). Never raises."""
    body = json.dumps(delivery.event.envelope(), separators=(",", ":"), ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "kiosk-webhooks/1",
        "X-Kiosk-Event": delivery.event.type,
        "X-Kiosk-Delivery": str(delivery.delivery_id),
        "X-Kiosk-Signature": sign(delivery.endpoint.secret, body, int(time.time())),
    }
    started = time.monotonic()
    try:
        check_url(delivery.endpoint.url)
        with requests.Session() as session:
            session.trust_env = False  # no proxies or .netrc from the environment
            answer = session.post(
                delivery.endpoint.url,
                data=body,
                headers=headers,
                timeout=settings.WEBHOOK_TIMEOUT,
                allow_redirects=False,
                stream=True,
            )
            text = answer.raw.read(500, decode_content=True).decode("utf-8", errors="replace")
            answer.close()
        code, error = answer.status_code, "" if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
    except UrlNotAllowed as exc:
        code, error, text = None, str(exc), ""
    except requests.RequestException as exc:
        code, error, text = None, f"{type(exc).__name__}: {exc}"[:500], ""
    return code, error, text, int((time.monotonic() - started) * 1000)


def deliver(delivery_id: int) -> str:
    """Sends one delivery (the `deliver_event` task). Returns what happened, for the task's result."""
    delivery, why_not = _claim(delivery_id)
    if delivery is None:
        return why_not
    code, error, text, duration = _post(delivery)
    with transaction.atomic():
        delivery = EventDelivery.objects.select_for_update().get(pk=delivery_id)
        DeliveryAttempt.objects.create(
            delivery=delivery, status_code=code, duration_ms=duration, error=error[:500], response_body=text[:500]
        )
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error, delivery.locked_until = code, error[:500], None
        if not error:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = Status.DELIVERED, timezone.now(), None
            delivery.save()
            _hand_over(delivery)
            return f"delivered ({code}) in {duration} ms"
        policy = _policy()
        if delivery.attempts >= policy.max_attempts:
            delivery.status, delivery.next_attempt_at = Status.DEAD, None
            delivery.save()
            logger.error("webhook delivery %s dead after %s attempts: %s", delivery.pk, delivery.attempts, error)
            return f"dead: {error}"
        delay = policy.delay(delivery.attempts)
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        delivery.save()
        enqueue(_task(), delivery.pk, delay=delay)
    logger.warning(
        "webhook delivery %s failed (%s); attempt %s in %.0f s", delivery.pk, error, delivery.attempts, delay
    )
    return f"failed: {error}; next attempt in {delay:.0f} s"


def _task():
    from kiosk.events import tasks

    return tasks.deliver_event


def _hand_over(delivery: EventDelivery) -> None:
    """After a success: the next undelivered event of the same order for this endpoint may go."""
    following = (
        EventDelivery.objects.filter(
            endpoint_id=delivery.endpoint_id,
            order_id=delivery.order_id,
            sequence__gt=delivery.sequence,
            status=Status.PENDING,
        )
        .order_by("sequence")
        .values_list("pk", flat=True)
        .first()
    )
    if following is not None:
        enqueue(_task(), following)


def send_again(delivery_ids) -> int:
    """The admin's "Send again": dead (or delivered) deliveries get a fresh set of attempts, now."""
    count = 0
    with transaction.atomic():
        for delivery in EventDelivery.objects.select_for_update().filter(pk__in=list(delivery_ids)):
            delivery.status, delivery.attempts, delivery.next_attempt_at = Status.PENDING, 0, None
            delivery.locked_until = None
            delivery.save()
            enqueue(_task(), delivery.pk)
            count += 1
    return count


def deliveries_sweep(*, now=None, limit: int = 500) -> int:
    """Re-enqueues pending deliveries whose task is overdue (lost, or the worker was down): the safety net
    behind the tasks. Extra tasks are harmless: a delivery is claimed before it is sent."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=30)
    due = (
        EventDelivery.objects.filter(status=Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True, created_at__lt=grace) | Q(next_attempt_at__lt=grace))
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .order_by("order_id", "sequence")
    )
    seen_orders, count = set(), 0
    for pk, endpoint_id, order_id in due.values_list("pk", "endpoint_id", "order_id")[:limit]:
        if (endpoint_id, order_id) in seen_orders:
            continue  # only the first of an order: the others follow it
        seen_orders.add((endpoint_id, order_id))
        enqueue(_task(), pk)
        count += 1
    return count
