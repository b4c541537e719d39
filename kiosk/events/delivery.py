"""Sending events to subscribers: where an outgoing webhook is signed, sent, retried and given up.

Each delivery is one event for one endpoint, sent by the worker (task `deliver_event`) as a POST of the
envelope with `X-Kiosk-Event`, `X-Kiosk-Delivery` (the same on every attempt) and `X-Kiosk-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` (the HTTP side, SSRF rules and deadline included,
is outbound.py). A 2xx answer delivers it; anything else, or no complete answer by the deadline, is retried
with exponential backoff and jitter, and after WEBHOOK_MAX_ATTEMPTS the delivery is dead (the admin shows it,
with "send again").

One order's events reach an endpoint in sequence: a delivery waits while an earlier one of the same order and
endpoint is not delivered (pending or dead), and each success hands over to the next. Other orders' events
are not held up. At least once: a worker killed mid-send sends again after restart; subscribers deduplicate
on `event_id` (or X-Kiosk-Delivery).
"""

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from kiosk.events import outbound
from kiosk.events.models import DeliveryAttempt, EventDelivery, WebhookEndpoint
from kiosk.jobs import RetryPolicy, enqueue

logger = logging.getLogger("kiosk.events")
Status = EventDelivery.Status
ENDPOINT_DELETED = "endpoint deleted"  # a delivery row goes with its endpoint (on_delete=CASCADE)


# --- Signing --------------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# --- Sending --------------------------------------------------------------------------------------


def _policy() -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.WEBHOOK_MAX_ATTEMPTS, base_delay=settings.WEBHOOK_RETRY_BASE_SECONDS, max_delay=3600
    )


def _lease() -> timedelta:
    """How long a claimed delivery is its worker's: past it (the worker died mid-send), another may send it.
    Longer than a send can last (outbound.post cuts the connection at its deadline)."""
    return timedelta(seconds=outbound.deadline_seconds() + settings.WEBHOOK_TIMEOUT + 5)


def _claim(delivery_id: int) -> tuple[EventDelivery | None, str]:
    """Takes a delivery for sending (a lease in `locked_until`), if it is due and every earlier event of its
    order has reached the endpoint.

    The delivery and the earlier ones of its order and endpoint are locked together in sequence order, so
    every claim and record takes them in one order (no deadlock), and a claim waits for a record in progress
    instead of missing it: a delivery that finds an earlier one undelivered is handed the turn by that one's
    success (`_hand_over`), never lost between the two.
    """
    now = timezone.now()
    key = EventDelivery.objects.filter(pk=delivery_id).values("endpoint_id", "order_id", "sequence").first()
    if key is None:
        return None, ENDPOINT_DELETED
    with transaction.atomic():
        rows = list(
            EventDelivery.objects.select_for_update()
            .filter(endpoint_id=key["endpoint_id"], order_id=key["order_id"], sequence__lte=key["sequence"])
            .order_by("sequence")
        )
        delivery = next((row for row in rows if row.pk == delivery_id), None)
        if delivery is None:
            return None, ENDPOINT_DELETED
        if delivery.status != Status.PENDING:
            return None, f"already {delivery.status}"
        if delivery.locked_until and delivery.locked_until > now:
            # Perhaps by a worker that died: look again when its lease is over (a no-op if it was sent).
            enqueue(_task(), delivery.pk, delay=(delivery.locked_until - now).total_seconds() + 1)
            return None, "being sent by another worker"
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
            return None, "not due yet"
        if not WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, active=True).exists():
            return None, "endpoint inactive"
        if any(row.status != Status.DELIVERED for row in rows if row.sequence < delivery.sequence):
            return None, "waiting for an earlier event of the order"
        delivery.locked_until = now + _lease()
        delivery.save(update_fields=["locked_until"])
    delivery = EventDelivery.objects.select_related("event", "endpoint").filter(pk=delivery_id).first()
    return delivery, "" if delivery is not None else ENDPOINT_DELETED


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
        code, text = outbound.post(delivery.endpoint.url, body=body, headers=headers)
        error = "" if 200 <= code < 300 else f"HTTP {code}"
    except outbound.UrlNotAllowed as exc:
        code, error, text = None, str(exc), ""
    except requests.RequestException as exc:
        code, error, text = None, f"{type(exc).__name__}: {exc}"[:500], ""
    return code, error, text, int((time.monotonic() - started) * 1000)


def deliver(delivery_id: int) -> str:
    """Sends one delivery (the `deliver_event` task). Returns what happened, for the task's result."""
    delivery, why_not = _claim(delivery_id)
    if delivery is None:
        return why_not
    lease = delivery.locked_until
    code, error, text, duration = _post(delivery)
    with transaction.atomic():
        delivery = EventDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None:
            # Its endpoint was deleted while we were sending (the deliveries go with it): nothing to record.
            return ENDPOINT_DELETED
        DeliveryAttempt.objects.create(
            delivery=delivery, status_code=code, duration_ms=duration, error=error[:500], response_body=text[:500]
        )
        if delivery.locked_until != lease:
            # Our lease is not the delivery's any more (this process stalled past it and another worker took
            # the delivery over): the attempt is on record, the outcome is the other worker's to write.
            logger.warning("webhook delivery %s: lease lost while sending; result left to its new sender", delivery_id)
            return "lease lost while sending"
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
    """The admin's "Send again": dead (or delivered) deliveries get a fresh set of attempts, now. A pending
    one is left alone (it is on its way, or being sent right now: a second send would run beside it)."""
    count = 0
    with transaction.atomic():
        deliveries = (
            EventDelivery.objects.select_for_update()
            .filter(pk__in=list(delivery_ids), status__in=[Status.DEAD, Status.DELIVERED])
            .order_by("endpoint_id", "order_id", "sequence")  # the order _claim locks them in
        )
        for delivery in deliveries:
            delivery.status, delivery.attempts, delivery.next_attempt_at = Status.PENDING, 0, None
            delivery.locked_until = None
            delivery.save()
            enqueue(_task(), delivery.pk)
            count += 1
    return count


def _enqueue_first_of_each_order(pending, *, now, limit: int) -> int:
    """Enqueues the first of `pending` (deliveries) for each order and endpoint: the others follow it
    (`_hand_over`). Those a worker holds are left to it."""
    pending = (
        pending.filter(status=Status.PENDING)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .order_by("order_id", "sequence")
    )
    seen_orders, count = set(), 0
    for pk, endpoint_id, order_id in pending.values_list("pk", "endpoint_id", "order_id")[:limit]:
        if (endpoint_id, order_id) in seen_orders:
            continue  # only the first of an order: the others follow it
        seen_orders.add((endpoint_id, order_id))
        enqueue(_task(), pk)
        count += 1
    return count


def deliveries_sweep(*, now=None, limit: int = 500) -> int:
    """Re-enqueues pending deliveries whose task is overdue (lost, or the worker was down): the safety net
    behind the tasks. Extra tasks are harmless: a delivery is claimed before it is sent. Only the first
    undelivered event of each order and endpoint is looked at: those behind it follow it (or wait for a
    dead one's "send again"), and inactive endpoints' wait for `deliveries_resume`; else they would take the
    sweep's `limit` every time."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=30)
    undelivered_before = EventDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"), order_id=OuterRef("order_id"), sequence__lt=OuterRef("sequence")
    ).exclude(status=Status.DELIVERED)
    due = (
        EventDelivery.objects.filter(endpoint__active=True)
        .filter(Q(next_attempt_at__isnull=True, created_at__lt=grace) | Q(next_attempt_at__lt=grace))
        .exclude(Exists(undelivered_before))
    )
    return _enqueue_first_of_each_order(due, now=now, limit=limit)


def deliveries_resume(*, endpoint_id: int, limit: int = 500) -> int:
    """An endpoint active again: what waited for it goes now, the first of each order, in the caller's
    transaction. Beyond `limit` orders, the sweep takes the rest."""
    return _enqueue_first_of_each_order(
        EventDelivery.objects.filter(endpoint_id=endpoint_id), now=timezone.now(), limit=limit
    )
