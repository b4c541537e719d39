"""The notification URL's logic: store every delivery, verify it, then apply what Mercado Pago says.

1. Store first (headers, raw body, query, remote address), even forged or malformed deliveries.
2. Verify `x-signature` exactly as Mercado Pago documents it. Bad or missing: 401, nothing changes.
3. Deduplicate on Mercado Pago's identifiers (a unique column, set only on genuine deliveries).
4. Fetch the order from Mercado Pago by id (the body is only a hint) and apply it, idempotently.
   If Mercado Pago cannot be reached, the delivery stays pending for `manage.py process_notifications`:
   the answer is still 200, since the delivery is safely stored and answering 5xx only makes it re-send.
Legacy IPN (`?topic=...&id=...`, unsigned) is stored and acknowledged and only ever triggers a fetch.
"""

import hashlib
import hmac
import json
import logging
import re
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from payments.gateway import GatewayError, GatewayRejected, gateway
from payments.models import Payment, WebhookDelivery
from payments.services import payment_apply_provider_order, payment_note_notification

logger = logging.getLogger(__name__)
D = WebhookDelivery.Status
KEPT_HEADERS = ("x-signature", "x-request-id", "content-type", "user-agent", "content-length", "x-forwarded-for")
RETRY_DELAYS = [30, 60, 300, 900, 3600]  # seconds before the 1st, 2nd... retry of a pending delivery


# --- Signature ------------------------------------------------------------------------------------


def parse_signature(header: str) -> dict[str, str]:
    """`ts=1704908010,v1=618c8534...` -> {"ts": ..., "v1": ...} (split on ',' then on the first '=')."""
    parts = {}
    for piece in (header or "").split(","):
        key, sep, value = piece.partition("=")
        if sep:
            parts[key.strip().lower()] = value.strip()
    return parts


def signature_manifest(*, data_id: str, request_id: str, ts: str) -> str:
    """`id:<data.id>;request-id:<x-request-id>;ts:<ts>;`, dropping any part whose value is missing."""
    if data_id.isalnum():
        data_id = data_id.lower()
    manifest = ""
    for name, value in (("id", data_id), ("request-id", request_id), ("ts", ts)):
        if value:
            manifest += f"{name}:{value};"
    return manifest


def verify_signature(*, header: str, data_id: str, request_id: str, secret: str, now: float | None = None) -> str:
    """Returns "" when the signature is good, else why not."""
    if not header:
        return "missing x-signature header"
    parts = parse_signature(header)
    ts, v1 = parts.get("ts", ""), parts.get("v1", "")
    if not ts or not v1:
        return "x-signature lacks ts or v1"
    if not re.fullmatch(r"[0-9]{1,20}", ts):
        return "x-signature ts is not a number"
    manifest = signature_manifest(data_id=data_id, request_id=request_id, ts=ts)
    expected = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, v1.lower()):
        return "x-signature v1 does not match"
    tolerance = settings.MERCADOPAGO_SIGNATURE_TOLERANCE
    if tolerance:
        seconds = int(ts) / 1000 if len(ts) >= 12 else int(ts)  # Mercado Pago sends seconds or milliseconds
        if abs((now or time.time()) - seconds) > tolerance:
            return "x-signature ts is outside the accepted window"
    return ""


# --- The inbox ------------------------------------------------------------------------------------


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def delivery_store(request) -> WebhookDelivery:
    """Saves the delivery as received, before anything else looks at it."""
    query = {key: request.GET.get(key) for key in request.GET}
    headers = {name: request.headers[name] for name in KEPT_HEADERS if name in request.headers}
    body = request.body.decode("utf-8", errors="replace")
    topic = query.get("type") or query.get("topic") or ""
    resource_id = query.get("data.id") or query.get("id") or ""
    action = ""
    try:
        parsed = json.loads(body) if body else {}
        if isinstance(parsed, dict):
            action = str(parsed.get("action") or "")[:60]
            topic = topic or str(parsed.get("type") or parsed.get("topic") or "")
    except ValueError:
        pass
    return WebhookDelivery.objects.create(
        topic=topic[:40],
        action=action,
        resource_id=resource_id[:100],
        request_id=headers.get("x-request-id", "")[:100],
        signature=headers.get("x-signature", "")[:300],
        query=query,
        headers=headers,
        body=body,
        remote_addr=_client_ip(request),
    )


def _is_legacy_ipn(delivery: WebhookDelivery) -> bool:
    return "topic" in delivery.query and "data.id" not in delivery.query


def delivery_verify(delivery: WebhookDelivery) -> bool:
    """Checks the signature of a (non-IPN) delivery and records the verdict."""
    error = verify_signature(
        header=delivery.headers.get("x-signature", ""),
        data_id=delivery.query.get("data.id") or "",
        request_id=delivery.headers.get("x-request-id", ""),
        secret=settings.MERCADOPAGO_WEBHOOK_SECRET,
    )
    delivery.signature_valid = not error
    delivery.signature_error = error
    if error:
        delivery.status = D.REJECTED
        logger.warning("notification %s rejected: %s", delivery.pk, error)
    delivery.save(update_fields=["signature_valid", "signature_error", "status"])
    return not error


def _dedupe_key(delivery: WebhookDelivery) -> str:
    """Mercado Pago's identifiers for a notification: a re-sent one has the same ones."""
    try:
        body = json.loads(delivery.body) if delivery.body else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    notification_id = body.get("id") or delivery.request_id
    return (
        f"{delivery.topic}:{delivery.resource_id}:{body.get('action', '')}:{data.get('version', '')}:{notification_id}"[
            :255
        ]
    )


def delivery_claim_dedupe(delivery: WebhookDelivery) -> WebhookDelivery | None:
    """Marks a genuine delivery with its identifiers. Returns the earlier twin when it is a duplicate."""
    key = _dedupe_key(delivery)
    try:
        with transaction.atomic():
            WebhookDelivery.objects.filter(pk=delivery.pk).update(dedupe_key=key)
    except IntegrityError:
        twin = WebhookDelivery.objects.filter(dedupe_key=key).first()
        delivery.status = D.IGNORED
        delivery.last_error = f"duplicate of delivery {twin.pk if twin else '?'}"
        delivery.processed_at = timezone.now()
        delivery.save(update_fields=["status", "last_error", "processed_at"])
        return twin or delivery
    delivery.dedupe_key = key
    return None


def delivery_process(delivery: WebhookDelivery, *, retries: int = 0) -> WebhookDelivery:
    """Fetches what the delivery is about from Mercado Pago and applies it. Never raises for Mercado Pago
    being down: the delivery then stays pending, with the error and the time of the next attempt."""
    if delivery.signature_valid is not True and not _is_legacy_ipn(delivery):
        # Never verified (its check crashed, or it was stored by hand): nothing to act on.
        delivery.status, delivery.last_error = D.REJECTED, delivery.last_error or "signature never verified"
        delivery.save(update_fields=["status", "last_error"])
        return delivery
    delivery.attempts += 1
    try:
        payment = _fetch_and_apply(delivery, retries=retries)
    except GatewayError as exc:
        if isinstance(exc, GatewayRejected) and exc.status in (400, 404):
            delivery.status, delivery.last_error = D.IGNORED, f"Mercado Pago does not know it: {exc.message}"
        else:
            delay = RETRY_DELAYS[min(delivery.attempts - 1, len(RETRY_DELAYS) - 1)]
            delivery.status, delivery.last_error = D.PENDING, exc.message
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            logger.warning("notification %s not applied yet (%s); retry in %ss", delivery.pk, exc.message, delay)
    except Exception as exc:  # a bug must not lose the notification: keep it pending and say why
        logger.exception("notification %s failed", delivery.pk)
        delivery.status, delivery.last_error = D.PENDING, f"{type(exc).__name__}: {exc}"
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=RETRY_DELAYS[-1])
    else:
        if payment:
            payment_note_notification(
                payment=payment,
                delivery_id=delivery.pk,
                topic=delivery.topic,
                action=delivery.action,
                body=delivery.body,
            )
        delivery.payment = payment
        delivery.status = D.PROCESSED if payment else D.IGNORED
        delivery.last_error = "" if payment else "not one of our payments"
        delivery.processed_at = timezone.now()
    delivery.save()
    return delivery


def _fetch_and_apply(delivery: WebhookDelivery, *, retries: int) -> Payment | None:
    mp = gateway()
    topic, resource_id = delivery.topic, delivery.resource_id
    if not resource_id:
        return None
    if topic == "order":
        mp_order = mp.get_order(resource_id, retries=retries)
        return payment_apply_provider_order(mp_order=mp_order, source=f"notification {delivery.pk}")
    if topic == "payment":
        # A Payments API notification: find the Mercado Pago order the payment belongs to, then apply it.
        mp_payment = mp.get_payment(resource_id, retries=retries)
        order_ref = (mp_payment.get("order") or {}).get("id")
        ours = Payment.objects.filter(reference=str(mp_payment.get("external_reference") or "")).first()
        provider_order_id = ours.provider_order_id if ours and ours.provider_order_id else order_ref
        if not provider_order_id or not str(provider_order_id).upper().startswith("ORD"):
            return None
        mp_order = mp.get_order(str(provider_order_id), retries=retries)
        return payment_apply_provider_order(mp_order=mp_order, source=f"notification {delivery.pk}")
    return None  # merchant_order and other topics carry nothing we act on


def delivery_handle(delivery: WebhookDelivery) -> bool:
    """The whole pipeline after storing. Returns False when the signature is bad (answer 401)."""
    if _is_legacy_ipn(delivery):
        delivery_process(delivery)
        return True
    if not delivery_verify(delivery):
        return False
    if delivery_claim_dedupe(delivery) is not None:
        return True
    delivery_process(delivery)
    return True


def deliveries_retry(*, limit: int = 100) -> int:
    """Re-applies pending deliveries whose time has come (`manage.py process_notifications`).

    Each is claimed with SELECT ... FOR UPDATE SKIP LOCKED and a short lease, so several runners (cron on
    two machines, a k8s CronJob overlapping itself) never work on the same delivery.
    """
    done = 0
    for _ in range(limit):
        now = timezone.now()
        due = Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True, received_at__lt=now - timedelta(seconds=30))
        with transaction.atomic():
            delivery = (
                WebhookDelivery.objects.select_for_update(skip_locked=True)
                .filter(due, status=D.PENDING)
                .exclude(signature_valid=False)
                .order_by("received_at")
                .first()
            )
            if delivery is None:
                break
            delivery.next_attempt_at = now + timedelta(minutes=5)  # the lease, renewed by the outcome below
            delivery.save(update_fields=["next_attempt_at"])
        delivery_process(delivery, retries=settings.MERCADOPAGO_MAX_RETRIES)
        done += 1
    return done
