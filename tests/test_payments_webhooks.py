"""The notification URL: signatures as Mercado Pago's SDKs make them (checked by the SDK's own validator),
what is accepted unsigned, what is stored of junk, throttling and replays. (Bodies that are not text and
notifications about orders that do not exist: tests/test_faults.py, with the other faults.)"""

import datetime
import hashlib
import hmac
import json
import time
import uuid

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from mercadopago.webhook import WebhookSignatureValidator
from mercadopago.webhook.validator import _build_manifest as sdk_manifest

from payments.models import Payment, PaymentEvent, WebhookDelivery
from payments.webhooks import REJECTED_BODY_CHARS, parse_signature, signature_manifest, verify_signature
from tests.conftest import new_key, place

URL = "/api/v1/webhooks/mercadopago/"
SECRET = "test-secret-signature"


def hmac_hex(manifest: str, secret: str) -> str:
    return hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()


def sdk_signed_headers(*, data_id: str, secret: str, request_id: str | None = None, ts: str | None = None) -> dict:
    """x-signature made independently of our code, with the official SDK's manifest rule (id as received),
    and checked by the SDK's own validator before it is used."""
    request_id = request_id or str(uuid.uuid4())
    ts = ts or str(int(time.time()))
    signature = f"ts={ts},v1={hmac_hex(sdk_manifest(data_id, request_id, ts), secret)}"
    WebhookSignatureValidator.validate(signature, request_id, data_id, secret)  # raises if it is not the SDK's
    return {"HTTP_X_SIGNATURE": signature, "HTTP_X_REQUEST_ID": request_id}


def post(query: str, body="", **headers):
    """POSTs to the notification URL as Mercado Pago would, then lets our worker run what it enqueued."""
    from kiosk.worker import run_pending

    data = body if isinstance(body, bytes | str) else json.dumps(body)
    response = Client(REMOTE_ADDR=headers.pop("REMOTE_ADDR", "203.0.113.9")).post(
        f"{URL}?{query}" if query else URL, data, content_type="application/json", **headers
    )
    run_pending()
    return response


# --- The signature, as a unit ---------------------------------------------------------------------


def test_manifest_keeps_the_id_as_received_and_drops_missing_parts():
    assert signature_manifest(data_id="ORD01ABC", request_id="req-1", ts="1704908010") == (
        "id:ORD01ABC;request-id:req-1;ts:1704908010;"
    )
    assert signature_manifest(data_id="", request_id="req-1", ts="17") == "request-id:req-1;ts:17;"
    assert signature_manifest(data_id="123", request_id="", ts="17") == "id:123;ts:17;"
    assert signature_manifest(data_id="ORD1", request_id="r", ts="1") == sdk_manifest("ORD1", "r", "1")


def test_parse_splits_on_commas_then_on_the_first_equals():
    assert parse_signature("ts=1704908010, v1=abc=def") == {"ts": "1704908010", "v1": "abc=def"}


@pytest.mark.parametrize(("signed_id", "case"), [("ORD01XYZ", "as_received"), ("ord01xyz", "lowercase")])
@pytest.mark.parametrize("unit", ["s", "ms"])
def test_the_id_as_received_or_lower_cased_both_verify_and_say_which(signed_id, case, unit):
    now = time.time()
    ts = str(int(now * 1000) if unit == "ms" else int(now))
    header = f"ts={ts},v1={hmac_hex(f'id:{signed_id};request-id:rid;ts:{ts};', SECRET)}"
    verdict = verify_signature(header=header, data_id="ORD01XYZ", request_id="rid", secret=SECRET, now=now)
    assert (verdict.error, verdict.id_case) == ("", case)


@pytest.mark.parametrize(
    ("header", "why"),
    [("", "missing"), ("v1=abc", "lacks"), ("ts=123", "lacks"), ("ts=abc,v1=def", "not a number"), ("x", "lacks")],
)
def test_malformed_headers_are_refused(header, why):
    assert why in verify_signature(header=header, data_id="1", request_id="r", secret=SECRET).error


def test_wrong_secret_wrong_id_and_tampering_are_refused():
    ts = str(int(time.time()))
    header = f"ts={ts},v1={hmac_hex(f'id:ORD1;request-id:r;ts:{ts};', SECRET)}"
    assert verify_signature(header=header, data_id="ORD1", request_id="r", secret="other").error
    assert verify_signature(header=header, data_id="ORD2", request_id="r", secret=SECRET).error
    assert verify_signature(header=header, data_id="ORD1", request_id="r2", secret=SECRET).error
    tampered = f"ts={int(ts) + 1},v1={header.split('v1=')[1]}"
    assert verify_signature(header=tampered, data_id="ORD1", request_id="r", secret=SECRET).error


def test_old_timestamps_are_refused_unless_the_window_is_off(settings):
    old = str(int(time.time()) - 3600)
    header = f"ts={old},v1={hmac_hex(f'id:1;request-id:r;ts:{old};', SECRET)}"
    settings.MERCADOPAGO_SIGNATURE_TOLERANCE = 600
    assert "window" in verify_signature(header=header, data_id="1", request_id="r", secret=SECRET).error
    settings.MERCADOPAGO_SIGNATURE_TOLERANCE = 0
    assert verify_signature(header=header, data_id="1", request_id="r", secret=SECRET).error == ""


# --- Over HTTP, with Mercado Pago's timing --------------------------------------------------------


@pytest.fixture
def paid_at_mercadopago(kiosk, menu, mercadopago, migration_data):
    """A checked-out order the customer has paid at Mercado Pago; no notification delivered yet."""
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    return Payment.objects.get(pk=payment["id"])


transactional = pytest.mark.django_db(transaction=True)


@transactional
def test_a_notification_signed_by_the_sdks_rule_is_accepted(paid_at_mercadopago, mercadopago):
    data_id = paid_at_mercadopago.provider_order_id
    headers = sdk_signed_headers(data_id=data_id, secret=settings.MERCADOPAGO_WEBHOOK_SECRET)
    response = post(f"data.id={data_id}&type=order", {"type": "order", "action": "order.processed"}, **headers)
    assert response.status_code == 200, response.json()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.signature_id_case) == ("processed", "as_received")
    assert Payment.objects.get().status == "approved"


@transactional
def test_a_notification_signed_with_the_documented_lower_case_id_is_accepted_and_recorded(
    paid_at_mercadopago, mercadopago
):
    data_id = paid_at_mercadopago.provider_order_id
    request_id, ts = str(uuid.uuid4()), str(int(time.time()))
    v1 = hmac_hex(f"id:{data_id.lower()};request-id:{request_id};ts:{ts};", settings.MERCADOPAGO_WEBHOOK_SECRET)
    response = post(
        f"data.id={data_id}&type=order",
        {"type": "order"},
        HTTP_X_SIGNATURE=f"ts={ts},v1={v1}",
        HTTP_X_REQUEST_ID=request_id,
    )
    assert response.status_code == 200
    assert WebhookDelivery.objects.get().signature_id_case == "lowercase"


@transactional
@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("data.id={id}&type=order", {"type": "order"}),
        ("id={id}&topic=order", {}),
        ("data.id={id}", {}),
        ("type=order", {"type": "order", "data": {"id": "{id}"}}),
        ("", {"type": "order", "action": "order.processed", "data": {"id": "{id}"}}),
        ("id={id}", {"topic": "order"}),
        ("topic=payment&id=1&data.id={id}", {}),
        ("topic=payment&id={id}&type=order", {}),
    ],
)
def test_unsigned_order_shaped_requests_are_401_and_never_make_us_call_mercado_pago(
    paid_at_mercadopago, mercadopago, query, body
):
    data_id = paid_at_mercadopago.provider_order_id
    calls = len(mercadopago.calls)
    response = post(query.format(id=data_id), json.dumps(body).replace("{id}", data_id))
    assert (response.status_code, response.json()["code"]) == (401, "invalid_signature")
    assert len(mercadopago.calls) == calls
    assert Payment.objects.get().status == "pending"
    assert WebhookDelivery.objects.get().status == "rejected"


@transactional
def test_a_legacy_ipn_only_marks_the_payment_for_the_next_reconcile(paid_at_mercadopago, mercadopago):
    mercadopago.deliver()  # applied: we read the order, and learnt the buyer's Payments API id
    payment = Payment.objects.get()
    assert payment.status == "approved" and payment.provider_payment_reference.isdigit()

    calls = len(mercadopago.calls)
    response = post(f"topic=payment&id={payment.provider_payment_reference}")
    assert response.status_code == 200
    assert len(mercadopago.calls) == calls  # unsigned: no call to Mercado Pago
    assert Payment.objects.get().check_requested_at is not None
    call_command("reconcile_payments")  # reads it, although it was settled a moment ago
    assert len(mercadopago.calls) == calls + 1
    assert Payment.objects.get().check_requested_at is None

    assert post("topic=merchant_order&id=123").status_code == 200
    assert WebhookDelivery.objects.order_by("-id").first().status == "ignored"


@transactional
def test_a_replayed_genuine_delivery_adds_nothing_to_the_ledger(paid_at_mercadopago, mercadopago):
    data_id = paid_at_mercadopago.provider_order_id
    headers = sdk_signed_headers(data_id=data_id, secret=settings.MERCADOPAGO_WEBHOOK_SECRET)
    assert post(f"data.id={data_id}&type=order", {"id": "1", "type": "order"}, **headers).status_code == 200
    events = PaymentEvent.objects.count()
    calls = len(mercadopago.calls)
    for body in ({"id": "1", "type": "order"}, {"id": "2", "type": "order", "action": "order.refunded"}):
        replay = post(f"data.id={data_id}&type=order", body, **headers)
        assert replay.status_code == 200
    assert PaymentEvent.objects.count() == events
    assert len(mercadopago.calls) == calls
    assert list(WebhookDelivery.objects.order_by("id").values_list("status", flat=True)) == [
        "processed",
        "ignored",
        "ignored",
    ]


# --- Junk -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rejected_deliveries_are_stored_cut_short_with_their_real_size(mercadopago):
    response = post("data.id=ORD1&type=order", "x" * 50_000, HTTP_X_SIGNATURE="ts=1,v1=00")
    assert response.status_code == 401
    stored = WebhookDelivery.objects.get()
    assert (len(stored.body), stored.body_size) == (REJECTED_BODY_CHARS, 50_000)


@pytest.mark.django_db
def test_old_rejected_deliveries_are_purged_by_a_command(mercadopago):
    post("data.id=ORD1&type=order", "{}", HTTP_X_SIGNATURE="ts=1,v1=00")
    kept = WebhookDelivery.objects.create(topic="order", status="processed", signature_valid=True)
    WebhookDelivery.objects.update(received_at=timezone.now() - datetime.timedelta(days=30))
    call_command("purge_notifications")
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [kept.pk]


@pytest.mark.django_db
def test_invalid_signature_traffic_is_throttled_per_client_address(settings, mercadopago):
    settings.MERCADOPAGO_WEBHOOK_INVALID_PER_MINUTE = 3
    for _ in range(3):
        assert post("data.id=ORD1&type=order", "{}", HTTP_X_SIGNATURE="ts=1,v1=00").status_code == 401
    throttled = post("data.id=ORD1&type=order", "{}", HTTP_X_SIGNATURE="ts=1,v1=00")
    assert (throttled.status_code, throttled["Retry-After"]) == (429, "60")
    assert WebhookDelivery.objects.count() == 3  # nothing more stored
    other = post("data.id=ORD1&type=order", "{}", HTTP_X_SIGNATURE="ts=1,v1=00", REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 401  # another address is not punished
    data_id = "ORD01AAAAAAAAAAAAAAAAAAAAAAA"
    headers = sdk_signed_headers(data_id=data_id, secret=settings.MERCADOPAGO_WEBHOOK_SECRET)
    assert post(f"data.id={data_id}&type=order", {"type": "order"}, **headers).status_code == 200  # genuine passes


@transactional
def test_forgeries_never_take_the_place_of_the_genuine_notification(paid_at_mercadopago, mercadopago):
    data_id = paid_at_mercadopago.provider_order_id
    genuine = sdk_signed_headers(data_id=data_id, secret=settings.MERCADOPAGO_WEBHOOK_SECRET)
    forged = sdk_signed_headers(data_id=data_id, secret="not-the-secret", request_id=genuine["HTTP_X_REQUEST_ID"])
    for headers in (forged, {"HTTP_X_SIGNATURE": "ts=1,v1=zz"}, {}):
        assert post(f"data.id={data_id}&type=order", {"type": "order"}, **headers).status_code == 401
    assert Payment.objects.get().status == "pending"
    assert post(f"data.id={data_id}&type=order", {"type": "order"}, **genuine).status_code == 200
    assert Payment.objects.get().status == "approved"


@transactional
def test_an_unreadable_signature_ts_is_401_and_never_retried(paid_at_mercadopago, mercadopago):
    data_id = paid_at_mercadopago.provider_order_id
    for ts in ("\u00b2", "9" * 5000):
        response = post(f"data.id={data_id}&type=order", {"type": "order"}, HTTP_X_SIGNATURE=f"ts={ts},v1=ab")
        assert (response.status_code, response.json()["code"]) == (401, "invalid_signature")
    WebhookDelivery.objects.update(status="pending", next_attempt_at=None)
    WebhookDelivery.objects.update(received_at=timezone.now() - datetime.timedelta(minutes=5))
    call_command("process_notifications")
    assert Payment.objects.get().status == "pending"
    assert len(mercadopago.calls) == 1  # only the checkout


@transactional
def test_the_notification_url_answers_without_calling_mercado_pago_even_when_it_hangs(paid_at_mercadopago, mercadopago):
    """The notification URL stores, verifies and queues: Mercado Pago's latency never reaches its answer.
    The worker then fetches the order; when Mercado Pago times out there, it tries again later."""
    from kiosk.worker import run_pending

    data_id = paid_at_mercadopago.provider_order_id
    calls = len(mercadopago.calls)
    mercadopago.faults = ["timeout", "timeout", "timeout"]  # every call the notification could make would hang
    headers = sdk_signed_headers(data_id=data_id, secret=settings.MERCADOPAGO_WEBHOOK_SECRET)
    response = Client(REMOTE_ADDR="203.0.113.9").post(
        f"{URL}?data.id={data_id}&type=order",
        json.dumps({"type": "order", "action": "order.processed", "data": {"id": data_id}}),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 200 and response.json()["status"] == "received"
    assert len(mercadopago.calls) == calls  # not one call inside Mercado Pago's request
    assert Payment.objects.get().status == "pending"
    run_pending()  # the worker: Mercado Pago times out, the delivery waits for its next attempt
    assert len(mercadopago.calls) > calls and Payment.objects.get().status == "pending"
    mercadopago.faults = []
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    call_command("process_notifications")
    assert Payment.objects.get().status == "approved"
