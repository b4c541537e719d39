"""The notification URL's logic: check, store, deduplicate, then apply what Mercado Pago says.

1. Read the body (it must be UTF-8 text; anything else is stored escaped and answered 400) and check the
   `x-signature` as Mercado Pago documents it, with `data.id` as received or lower-cased (both compared in
   constant time; which one matched is recorded). Every order-shaped request needs a valid signature (401
   otherwise). Only the two legacy IPN topics (`?topic=payment|merchant_order&id=...`) come unsigned, and
   they only mark the matching payment for the next reconcile: they never make us call Mercado Pago.
2. Store the delivery with its verdict, even a forged one (cut to a few KB, with its real size); a client
   address that sends too many invalid ones in a minute gets 429 and nothing stored.
3. Deduplicate on Mercado Pago's identifiers and on the signed identity (data.id + x-request-id): a copy or a
   replay is `ignored` and adds nothing to the ledger.
4. Enqueue `payments.tasks.process_notification` and answer 200: nothing here waits on Mercado Pago.
   The worker then fetches the order from Mercado Pago (the body is only a hint) and applies it
   (`delivery_run`). If Mercado Pago cannot be reached the delivery stays pending, with its own schedule of
   attempts (`retry_notifications`, every 30 s, and `manage.py process_notifications`).
"""

import hashlib
import hmac
import json
import logging
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from kiosk.jobs import enqueue
from payments.gateway import GatewayError, GatewayRejected, gateway
from payments.models import Payment, WebhookDelivery
from payments.services.apply import payment_apply_provider_order, payment_note_notification, payment_record_chargeback
from payments.services.ledger import Note, note

logger = logging.getLogger("payments.webhooks")
Delivery = WebhookDelivery.Status
IdCase = WebhookDelivery.IdCase
KEPT_HEADERS = ("x-signature", "x-request-id", "content-type", "user-agent", "content-length", "x-forwarded-for")
RETRY_DELAYS = [30, 60, 300, 900, 3600]  # seconds before the 1st, 2nd... retry of a pending delivery
LEGACY_IPN_TOPICS = ("payment", "merchant_order")
REJECTED_BODY_CHARS = 4096  # what is kept of a rejected delivery's body


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
    manifest = ""
    for name, value in (("id", data_id), ("request-id", request_id), ("ts", ts)):
        if value:
            manifest += f"{name}:{value};"
    return manifest


@dataclass(frozen=True)
class Verdict:
    error: str = ""  # "" when the signature is good
    id_case: str = ""  # which manifest matched (IdCase)


def verify_signature(*, header: str, data_id: str, request_id: str, secret: str, now: float | None = None) -> Verdict:
    """Checks x-signature against the manifest with data.id as received and lower-cased: Mercado Pago's
    SDKs sign the id as received, its developer docs say lower-case. Both are always compared (in constant
    time), so the time taken says nothing about which one matched."""
    if not header:
        return Verdict("missing x-signature header")
    parts = parse_signature(header)
    ts, v1 = parts.get("ts", ""), parts.get("v1", "")
    if not ts or not v1:
        return Verdict("x-signature lacks ts or v1")
    if not re.fullmatch(r"[0-9]{1,20}", ts):
        return Verdict("x-signature ts is not a number")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", v1):
        return Verdict("x-signature v1 is not an HMAC-SHA256 hex digest")
    matched = ""
    for id_case, value in ((IdCase.AS_RECEIVED, data_id), (IdCase.LOWERCASE, data_id.lower())):
        manifest = signature_manifest(data_id=value, request_id=request_id, ts=ts)
        expected = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, v1.lower()) and not matched:
            matched = id_case
    if not matched:
        return Verdict("x-signature v1 does not match")
    tolerance = settings.MERCADOPAGO_SIGNATURE_TOLERANCE
    if tolerance:
        seconds = int(ts) / 1000 if len(ts) >= 12 else int(ts)  # Mercado Pago sends seconds or milliseconds
        if abs((now or time.time()) - seconds) > tolerance:
            return Verdict("x-signature ts is outside the accepted window", matched)
    return Verdict("", matched)


# --- Receiving ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the notification URL answers: an HTTP status, a problem code and detail when it is an error."""

    status: int
    delivery: WebhookDelivery | None = None
    code: str = ""
    detail: str = ""
    retry_after: int | None = None


def _read_body(raw: bytes) -> tuple[str, object, str]:
    """(text to store, parsed JSON or None, why the body is unacceptable or "")."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="backslashreplace"), None, "the body is not UTF-8 text"
    try:
        parsed = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        return text, None, ""  # not JSON: nothing in it will be read, the signature decides
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError):
        return text, None, "the body holds characters that are not text (lone surrogates)"
    return text, parsed, ""


def _is_legacy_ipn(query: dict) -> bool:
    """`?topic=payment&id=...` or `?topic=merchant_order&id=...`: the only unsigned notifications accepted."""
    return query.get("topic") in LEGACY_IPN_TOPICS and "data.id" not in query and "type" not in query


# What anyone can send: rejected deliveries and unsigned IPNs. Throttled per client address, and purged.
JUNK = Q(status=Delivery.REJECTED) | Q(signature_valid__isnull=True)


def _throttled(remote_addr: str | None) -> bool:
    limit = settings.MERCADOPAGO_WEBHOOK_INVALID_PER_MINUTE
    if not limit:
        return False
    since = timezone.now() - timedelta(minutes=1)
    recent = WebhookDelivery.objects.filter(JUNK, remote_addr=remote_addr, received_at__gte=since)
    return recent.count() >= limit


def receive(request) -> Answer:
    """The whole pipeline for one request to the notification URL."""
    raw = request.body
    text, parsed, body_error = _read_body(raw)
    query = {key: request.GET.get(key) for key in request.GET}
    headers = {name: request.headers[name] for name in KEPT_HEADERS if name in request.headers}
    parsed_dict = parsed if isinstance(parsed, dict) else {}
    topic = query.get("type") or query.get("topic") or str(parsed_dict.get("type") or parsed_dict.get("topic") or "")
    resource_id = query.get("data.id") or query.get("id") or ""
    legacy = _is_legacy_ipn(query)
    if body_error:
        verdict = Verdict(body_error)
    elif legacy:
        verdict = Verdict()
    else:
        verdict = verify_signature(
            header=headers.get("x-signature", ""),
            data_id=query.get("data.id") or "",
            request_id=headers.get("x-request-id", ""),
            secret=settings.MERCADOPAGO_WEBHOOK_SECRET,
        )
    remote_addr = request.META.get("REMOTE_ADDR") or None
    rejected = bool(verdict.error)
    if (rejected or legacy) and _throttled(remote_addr):
        logger.warning("notification from %s refused unstored: too many invalid ones", remote_addr)
        return Answer(
            429, code="too_many_invalid_notifications", detail="Too many invalid notifications.", retry_after=60
        )
    fields = {
        "topic": topic[:40],
        "action": str(parsed_dict.get("action") or "")[:60],
        "resource_id": resource_id[:100],
        "request_id": headers.get("x-request-id", "")[:100],
        "signature": headers.get("x-signature", "")[:300],
        "signature_valid": None if legacy else not rejected,
        "signature_error": verdict.error[:200],
        "signature_id_case": verdict.id_case,
        "query": query,
        "headers": headers,
        "body": text[:REJECTED_BODY_CHARS] if rejected else text,
        "body_size": len(raw),
        "remote_addr": remote_addr,
        "status": Delivery.REJECTED if rejected else Delivery.PENDING,
    }
    if rejected or legacy:
        delivery = WebhookDelivery.objects.create(**fields)
    else:
        delivery, twin = _store_signed(fields, parsed_dict)
    if body_error:
        logger.warning("notification %s rejected: %s", delivery.pk, body_error)
        return Answer(400, delivery, "invalid_body", f"Notification rejected: {body_error}.")
    if rejected:
        logger.warning("notification %s rejected: %s", delivery.pk, verdict.error)
        return Answer(401, delivery, "invalid_signature", f"Notification rejected: {verdict.error}.")
    if legacy:
        _note_legacy_ipn(delivery)
    elif twin is None:
        from payments import tasks

        enqueue(tasks.process_notification, delivery.pk)
    else:
        logger.info("notification %s ignored: a copy of delivery %s", delivery.pk, twin.pk)
    return Answer(200, delivery)


def _dedupe_keys(fields: dict, body: dict) -> dict[str, str | None]:
    """Mercado Pago's identifiers for a notification: a re-sent one has the same `dedupe_key`; the same
    signed request sent again (a replay) the same `replay_key`."""
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    notification_id = body.get("id") or fields["request_id"]
    topic, resource_id, request_id = fields["topic"], fields["resource_id"], fields["request_id"]
    dedupe = f"{topic}:{resource_id}:{body.get('action', '')}:{data.get('version', '')}:{notification_id}"
    return {"dedupe_key": dedupe[:255], "replay_key": f"{resource_id}:{request_id}"[:255] if request_id else None}


def _store_signed(fields: dict, body: dict) -> tuple[WebhookDelivery, WebhookDelivery | None]:
    """Stores a genuine delivery with its identifiers, or, when it is a copy or a replay of an earlier one, as
    `ignored` beside it (every delivery is kept: it is the trace of what Mercado Pago sent). Returns
    (delivery, the earlier twin or None). Two queries for a copy, one for a new notification; the unique
    keys settle two copies arriving at the same instant."""
    keys = _dedupe_keys(fields, body)
    for _ in range(2):
        twin = _twin(**keys)
        if twin is not None:
            delivery = WebhookDelivery.objects.create(
                **{**fields, "status": Delivery.IGNORED},
                last_error=f"duplicate of delivery {twin.pk}",
                processed_at=timezone.now(),
            )
            return delivery, twin
        try:
            with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
                return WebhookDelivery.objects.create(**fields, **keys), None
        except IntegrityError:
            continue  # its twin committed between our look and our insert: it is found now
    raise RuntimeError("a notification's twin vanished while it was being stored")


def _twin(*, dedupe_key: str, replay_key: str | None) -> WebhookDelivery | None:
    match = Q(dedupe_key=dedupe_key) | Q(replay_key=replay_key) if replay_key else Q(dedupe_key=dedupe_key)
    return WebhookDelivery.objects.filter(match).only("pk").first()


def _note_legacy_ipn(delivery: WebhookDelivery) -> None:
    """An unsigned IPN is only a hint that something changed: the matching payment is read from Mercado
    Pago by the next reconcile. Nothing here calls Mercado Pago or changes money."""
    payment = None
    if delivery.topic == "payment" and re.fullmatch(r"[0-9]{1,20}", delivery.resource_id):
        payment = Payment.objects.filter(provider_payment_reference=delivery.resource_id).first()
    if payment is None:
        delivery.status, delivery.last_error = Delivery.IGNORED, "legacy IPN about nothing of ours"
    else:
        # No ledger line: anyone can send this, so it only earns the payment an early look (the delivery,
        # linked to the payment, is the trace).
        Payment.objects.filter(pk=payment.pk).update(check_requested_at=timezone.now())
        delivery.status, delivery.payment = Delivery.PROCESSED, payment
    delivery.processed_at = timezone.now()
    delivery.save(update_fields=["status", "last_error", "payment", "processed_at"])


# --- Applying -------------------------------------------------------------------------------------


def delivery_process(delivery: WebhookDelivery, *, retries: int = 0) -> WebhookDelivery:
    """Fetches what a signed delivery is about from Mercado Pago and applies it. Never raises for Mercado
    Pago being down: the delivery then stays pending, with the error and the time of the next attempt."""
    if delivery.signature_valid is not True:
        # Unsigned (a legacy IPN), forged, or never verified: nothing here may act on it.
        if delivery.status == Delivery.PENDING:
            delivery.status, delivery.last_error = Delivery.REJECTED, "signature never verified"
            delivery.save(update_fields=["status", "last_error"])
        return delivery
    delivery.attempts += 1
    try:
        payment = _fetch_and_apply(delivery, retries=retries)
    except GatewayError as exc:
        if isinstance(exc, GatewayRejected) and exc.status in (400, 404):
            delivery.status, delivery.last_error = Delivery.IGNORED, f"Mercado Pago does not know it: {exc.message}"
            logger.warning("notification %s ignored: Mercado Pago does not know %s", delivery.pk, delivery.resource_id)
        else:
            delay = RETRY_DELAYS[min(delivery.attempts - 1, len(RETRY_DELAYS) - 1)]
            delivery.status, delivery.last_error = Delivery.PENDING, exc.message
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            logger.warning("notification %s not applied yet (%s); retry in %ss", delivery.pk, exc.message, delay)
    except Exception as exc:  # a bug must not lose the notification: keep it pending and say why
        logger.exception("notification %s failed", delivery.pk)
        delivery.status, delivery.last_error = Delivery.PENDING, f"{type(exc).__name__}: {exc}"
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
        delivery.status = Delivery.PROCESSED if payment else Delivery.IGNORED
        delivery.last_error = "" if payment else "not one of our payments"
        if payment is None:
            logger.info(
                "notification %s ignored: %s %s is not one of ours", delivery.pk, delivery.topic, delivery.resource_id
            )
        delivery.processed_at = timezone.now()
    delivery.save()
    return delivery


def _notification(delivery: WebhookDelivery) -> Note:
    """Where what a notification caused came from, as the ledger says it ("via notificação 12")."""
    return note(gettext_noop("notification %(delivery)s"), delivery=delivery.pk)


def _fetch_and_apply(delivery: WebhookDelivery, *, retries: int) -> Payment | None:
    mp = gateway()
    topic, resource_id = delivery.topic, delivery.resource_id
    if not resource_id:
        return None
    if topic == "order":
        mp_order = mp.get_order(resource_id, retries=retries)
        return payment_apply_provider_order(mp_order=mp_order, source=_notification(delivery))
    if topic == "payment":
        # A Payments API notification: a chargeback shows there; the rest is read from the payment's order.
        mp_payment = mp.get_payment(resource_id, retries=retries)
        ours = payment_record_chargeback(mp_payment=mp_payment, source=_notification(delivery))
        order_ref = (mp_payment.get("order") or {}).get("id") if isinstance(mp_payment.get("order"), dict) else None
        provider_order_id = ours.provider_order_id if ours and ours.provider_order_id else order_ref
        if not provider_order_id or not str(provider_order_id).upper().startswith("ORD"):
            return ours
        mp_order = mp.get_order(str(provider_order_id), retries=retries)
        return payment_apply_provider_order(mp_order=mp_order, source=_notification(delivery)) or ours
    return None  # other topics carry nothing we act on


LEASE = timedelta(minutes=5)  # how long a claimed delivery is left to its runner before another may take it


def _claim(delivery_id, *, due) -> WebhookDelivery | None:
    """Locks a pending, verified delivery that `due` selects and leases it (next_attempt_at moved ahead), so
    two runners never apply the same delivery at once. None if it is not there, done, or leased."""
    with transaction.atomic():
        query = WebhookDelivery.objects.select_for_update(skip_locked=True).filter(
            due, status=Delivery.PENDING, signature_valid=True
        )
        delivery = query.filter(pk=delivery_id).first() if delivery_id else query.order_by("received_at").first()
        if delivery is not None:
            delivery.next_attempt_at = timezone.now() + LEASE  # renewed by the outcome
            delivery.save(update_fields=["next_attempt_at"])
        return delivery


def delivery_run(delivery_id: int) -> str:
    """The worker's task for a new delivery: claim it, then fetch and apply. Returns what happened."""
    now = timezone.now()
    delivery = _claim(delivery_id, due=Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    if delivery is None:
        return "not pending (done, or in another runner's hands)"
    return delivery_process(delivery, retries=settings.MERCADOPAGO_MAX_RETRIES).status


def deliveries_retry(*, limit: int = 100) -> int:
    """Re-applies pending deliveries whose time has come (`manage.py process_notifications`).

    Each is claimed with SELECT ... FOR UPDATE SKIP LOCKED and a short lease, so several runners (cron on
    two machines, a k8s CronJob overlapping itself) never work on the same delivery.
    """
    done = 0
    for _ in range(limit):
        now = timezone.now()
        # A new delivery is its task's for 30 s; after that (the task lost, the worker down) the sweep takes it.
        due = Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True, received_at__lt=now - timedelta(seconds=30))
        delivery = _claim(None, due=due)
        if delivery is None:
            break
        delivery_process(delivery, retries=settings.MERCADOPAGO_MAX_RETRIES)
        done += 1
    return done


MAX_KEEP_DAYS = 36500


def deliveries_purge(*, days: int | None = None, now=None) -> int:
    """Deletes what anyone could have sent (forged or unreadable deliveries, unsigned IPNs) older than
    MERCADOPAGO_WEBHOOK_KEEP_REJECTED_DAYS. Genuine deliveries stay: they are the payments' audit trail."""
    days = settings.MERCADOPAGO_WEBHOOK_KEEP_REJECTED_DAYS if days is None else days
    if not 0 <= days <= MAX_KEEP_DAYS:
        raise ValueError(f"days must be 0..{MAX_KEEP_DAYS}")
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = WebhookDelivery.objects.filter(JUNK, received_at__lt=cutoff).delete()
    return deleted
