"""The Mercado Pago simulator, driven through the official SDK (as the payments domain drives it), its HTTP
views, the pay page, the notifications it sends and the clock that sends them.

Notifications are captured by replacing the simulator's own transport (`notify.deliver`): that is the
Mercado Pago side, so nothing of ours is mocked. Time stands still unless a test moves it: the pump is off
and notifications and refunds are due only in an hour, so tests send (`notify.send_due`) and settle
(`engine.confirm_refunds`) themselves, exactly when they mean to.
"""

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import mercadopago
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from mercadopago.config import RequestOptions
from mercadopago.webhook import WebhookSignatureValidator

from payments.simulator import api, engine, notify, pump
from payments.simulator.client import SimulatorHttpClient
from payments.simulator.models import SimChargeback, SimNotification, SimOrder, SimRefund

ORDER_ID = re.compile(r"^ORD[0-9A-Z]{26}$")
PAY_ID = re.compile(r"^PAY[0-9A-Z]{26}$")
REF_ID = re.compile(r"^REF[0-9A-Z]{26}$")
CHB_ID = re.compile(r"^CHB[0-9A-Z]{26}$")
ORDERS_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def still_time(settings):
    """No pump, and nothing due for an hour: what happens later happens when the test says so."""
    settings.MERCADOPAGO_SIMULATOR_AUTOPUMP = False
    settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY = 3600
    settings.MERCADOPAGO_SIMULATOR_REFUND_DELAY = 3600


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    """Every notification the simulator delivers, as {"url", "headers", "body"} (answered 200)."""
    deliveries = []

    def capture(url, headers, body):
        deliveries.append({"url": url, "headers": headers, "body": json.loads(body)})
        return 200

    monkeypatch.setattr(notify, "deliver", capture)
    return deliveries


@pytest.fixture
def sdk(db):
    return mercadopago.SDK("TEST-token", http_client=SimulatorHttpClient())


def qr_body(total="25.90", **overrides) -> dict:
    body = {
        "type": "qr",
        "total_amount": total,
        "description": "Pedido 12",
        "external_reference": "order-12_a",
        "expiration_time": "PT15M",
        "config": {"qr": {"external_pos_id": "KIOSK001", "mode": "dynamic"}},
        "transactions": {"payments": [{"amount": total}]},
        "items": [
            {"title": "X-Burger", "unit_price": "12.95", "quantity": 2, "unit_measure": "unit", "external_code": "1"}
        ],
    }
    body.update(overrides)
    return body


def key_options(key: str | None = None) -> RequestOptions:
    return RequestOptions(custom_headers={"x-idempotency-key": key or str(uuid.uuid4())})


def create(sdk, body=None, key=None) -> dict:
    return sdk.order().create(body if body is not None else qr_body(), key_options(key))


def created_order(sdk) -> dict:
    result = create(sdk)
    assert result["status"] == 201, result
    return result["response"]


def paid_order(sdk, paid_amount=None) -> dict:
    order = created_order(sdk)
    engine.simulate(order["id"], "approved", paid_amount=paid_amount)
    return sdk.order().get(order["id"])["response"]


def refund(sdk, order, amount=None, key=None) -> dict:
    """POST /v1/orders/{id}/refund: all (no amount) or `amount` of the order's transaction."""
    body = None
    if amount is not None:
        body = {"transactions": [{"id": order["transactions"]["payments"][0]["id"], "amount": amount}]}
    return sdk.order().refund(order["id"], body, key_options(key))


def queued(*, topic=None) -> list[str]:
    """The actions of the notifications waiting to be sent, oldest first."""
    rows = SimNotification.objects.filter(status="queued").order_by("due_at", "id")
    return [row.action for row in rows if topic in (None, row.topic)]


def send_everything() -> int:
    return notify.send_due(everything=True)


def expected_signature(data_id: str, request_id: str, ts: str) -> str:
    """The documented manifest, computed independently of the simulator (data.id as received)."""
    manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"
    return hmac.new(settings.MERCADOPAGO_WEBHOOK_SECRET.encode(), manifest.encode(), hashlib.sha256).hexdigest()


def signature_parts(headers: dict) -> dict:
    return dict(part.split("=", 1) for part in headers["x-signature"].split(","))


# --- Create ---------------------------------------------------------------------------------------


def test_create_answers_201_with_the_documented_order(sdk):
    result = create(sdk)

    assert result["status"] == 201
    order = result["response"]
    assert ORDER_ID.match(order["id"])
    assert (order["type"], order["status"], order["status_detail"]) == ("qr", "created", "created")
    assert order["total_amount"] == "25.90"
    assert order["external_reference"] == "order-12_a"
    assert order["description"] == "Pedido 12"
    assert order["expiration_time"] == "PT15M"
    assert order["currency"] == "BRL"
    assert order["config"] == {"qr": {"external_pos_id": "KIOSK001", "mode": "dynamic"}}
    assert ORDERS_DATE.match(order["created_date"]) and ORDERS_DATE.match(order["last_updated_date"])
    assert "total_paid_amount" not in order
    [payment] = order["transactions"]["payments"]
    assert PAY_ID.match(payment["id"])
    assert payment == {"id": payment["id"], "amount": "25.90", "status": "created", "status_detail": "ready_to_process"}
    assert order["type_response"]["qr_data"] == f"{settings.SITE_URL}/mp-simulator/pay/{order['id']}/"
    assert order["items"][0]["unit_price"] == "12.95"
    stored = SimOrder.objects.get(pk=order["id"])
    assert stored.notification_url == settings.MERCADOPAGO_NOTIFICATION_URL
    assert stored.expires_at - stored.created_date == timedelta(minutes=15)


def test_mode_defaults_to_static_which_has_no_qr_of_its_own(sdk):
    order = create(sdk, qr_body(config={"qr": {"external_pos_id": "KIOSK001"}}))["response"]
    assert order["config"]["qr"]["mode"] == "static"
    assert "type_response" not in order


def test_same_key_and_body_replays_the_same_order(sdk):
    first = create(sdk, key="kiosk-order-12")
    again = create(sdk, key="kiosk-order-12")

    assert again["status"] == 201
    assert again["response"]["id"] == first["response"]["id"]
    assert SimOrder.objects.count() == 1


def test_same_key_with_another_body_is_a_conflict(sdk):
    create(sdk, key="kiosk-order-12")
    other = create(sdk, qr_body(total="30.00"), key="kiosk-order-12")

    assert other["status"] == 409
    assert other["response"]["errors"][0]["code"] == "idempotency_key_already_used"
    assert SimOrder.objects.count() == 1


def test_a_refused_request_does_not_use_up_its_key(sdk):
    assert create(sdk, qr_body(total="25.9"), key="k1")["status"] == 400
    assert create(sdk, key="k1")["status"] == 201


@pytest.mark.parametrize(
    ("change", "code", "where"),
    [
        (
            {"total_amount": "25.9", "transactions": {"payments": [{"amount": "25.9"}]}},
            "property_value",
            "$.total_amount",
        ),
        ({"total_amount": 25.90}, "property_type", "$.total_amount"),
        ({"total_amount": "-1.00"}, "property_value", "$.total_amount"),
        ({"transactions": {"payments": [{"amount": "20.00"}]}}, "invalid_total_amount", "$.total_amount"),
        ({"transactions": {"payments": []}}, "minimum_items", "$.transactions.payments"),
        ({"transactions": {"payments": [{"amount": "20.00"}, {"amount": "5.90"}]}}, "maximum_items", None),
        ({"external_reference": "pedido 12"}, "property_value", "$.external_reference"),
        ({"external_reference": "x" * 65}, "property_value", "$.external_reference"),
        ({"config": {"qr": {"mode": "dynamic"}}}, "required_properties", "$.config.qr.external_pos_id"),
        ({"config": {"qr": {"external_pos_id": "KIOSK001", "mode": "fixed"}}}, "property_value", "$.config.qr.mode"),
        ({"expiration_time": "15 minutes"}, "property_value", "$.expiration_time"),
        ({"expiration_time": "PT29S"}, "property_value", "$.expiration_time"),
        ({"expiration_time": "PT3601H"}, "property_value", "$.expiration_time"),
        ({"type": "online"}, "property_value", "$.type"),
        ({"notification_url": "https://example.com/hook"}, "unsupported_properties", "$.notification_url"),
        ({"description": "d" * 151}, "property_value", "$.description"),
        ({"items": [{"title": "X", "unit_price": "1.00", "quantity": "2"}]}, "property_type", "$.items[0].quantity"),
        ({"items": [{"title": "X", "unit_price": 1.0, "quantity": 1}]}, "property_type", "$.items[0].unit_price"),
    ],
)
def test_create_validates_as_documented(sdk, change, code, where):
    result = create(sdk, qr_body(**change))

    assert result["status"] == 400, result
    [error] = result["response"]["errors"]
    assert error["code"] == code
    assert error["message"]
    if where:
        assert where in error["details"]
    assert SimOrder.objects.count() == 0


def test_missing_required_fields_are_listed(sdk):
    body = qr_body()
    del body["external_reference"], body["transactions"]
    error = create(sdk, body)["response"]["errors"][0]
    assert error["code"] == "required_properties"
    assert error["details"] == ["$.external_reference", "$.transactions"]


def test_expiration_range_bounds_are_accepted(sdk):
    assert create(sdk, qr_body(expiration_time="PT30S"))["status"] == 201
    assert create(sdk, qr_body(expiration_time="PT3600H", external_reference="b"))["status"] == 201
    assert create(sdk, qr_body(expiration_time="P1DT2H", external_reference="c"))["status"] == 201


def test_requests_without_token_or_idempotency_key_are_refused(db):
    headers = {"Authorization": "Bearer TEST-token", "Content-Type": "application/json"}
    status, body = api.dispatch("POST", "/v1/orders", headers=headers, body=json.dumps(qr_body()))
    assert status == 400
    assert body["errors"][0]["code"] == "empty_required_header"

    status, body = api.dispatch("POST", "/v1/orders", headers={"X-Idempotency-Key": "k"}, body=json.dumps(qr_body()))
    assert status == 401
    assert body["errors"][0]["code"] == "unauthorized"

    status, body = api.dispatch("GET", "/v1/payments/123", headers={"Authorization": "Bearer "})
    assert (status, body["error"], body["status"]) == (401, "unauthorized", 401)


def test_idempotency_header_name_is_case_insensitive(db):
    headers = {"authorization": "Bearer t", "X-IDEMPOTENCY-KEY": "abc"}
    first = api.dispatch("POST", "/v1/orders", headers=headers, body=json.dumps(qr_body()))
    again = api.dispatch("POST", "/v1/orders", headers={**headers, "X-IDEMPOTENCY-KEY": "x"}, body="{}")
    replay = api.dispatch("POST", "/v1/orders", headers={"Authorization": "Bearer t", "x-idempotency-key": "abc"},
                          body=json.dumps(qr_body()))  # fmt: skip
    assert first[0] == 201 and again[0] == 400 and replay[0] == 201
    assert replay[1]["id"] == first[1]["id"]


def test_bad_json_and_unknown_paths(db):
    headers = {"Authorization": "Bearer t", "X-Idempotency-Key": "k"}
    status, body = api.dispatch("POST", "/v1/orders", headers=headers, body="{not json")
    assert (status, body["errors"][0]["code"]) == (400, "json_syntax_error")

    status, body = api.dispatch("GET", "/v1/unknown", headers=headers)
    assert (status, body["errors"][0]["code"]) == (404, "not_found")
    status, body = api.dispatch("DELETE", "/v1/orders/ORD01JQ4S4KY8HWQ6NA5PXB65B3D3", headers=headers)
    assert status == 405


# --- Get, expiry, cancel --------------------------------------------------------------------------


def test_get_returns_the_order_and_404_or_400_otherwise(sdk):
    order = created_order(sdk)

    got = sdk.order().get(order["id"])
    assert got["status"] == 200
    assert got["response"] == order

    missing = sdk.order().get("ORD01JQ4S4KY8HWQ6NA5PXB65B3D3")
    assert missing["status"] == 404
    assert missing["response"]["errors"][0]["code"] == "order_not_found"
    with pytest.raises(mercadopago.errors.exceptions.MPNotFoundError):
        missing.raise_for_status()

    bad = sdk.order().get("not-an-order")
    assert (bad["status"], bad["response"]["errors"][0]["code"]) == (400, "invalid_path_param")


def test_an_unpaid_order_past_its_expiration_reads_as_expired(sdk):
    order = created_order(sdk)
    SimOrder.objects.filter(pk=order["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    got = sdk.order().get(order["id"])["response"]

    assert (got["status"], got["status_detail"]) == ("expired", "expired")
    assert got["transactions"]["payments"][0]["status"] == "expired"
    assert queued() == []  # a lazy expiry is not notified
    with pytest.raises(engine.ApiError) as refused:
        engine.simulate(order["id"], "approved")
    assert refused.value.status == 409


def test_simulating_expiry_of_an_order_whose_time_is_up_notifies_it(sdk):
    order = created_order(sdk)
    SimOrder.objects.filter(pk=order["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = engine.simulate(order["id"], "expired")
    assert expired["status"] == "expired"
    assert queued() == ["order.expired"]


def test_cancel_a_created_order(sdk, sent):
    order = created_order(sdk)

    result = sdk.order().cancel(order["id"])

    assert result["status"] == 200
    canceled = result["response"]
    assert (canceled["status"], canceled["status_detail"]) == ("canceled", "canceled")
    payment = canceled["transactions"]["payments"][0]
    assert (payment["status"], payment["status_detail"]) == ("canceled", "canceled_by_api")
    assert sent == [] and queued() == ["order.canceled"]
    send_everything()
    assert sent[0]["body"]["data"]["status"] == "canceled"

    again = sdk.order().cancel(order["id"])
    assert (again["status"], again["response"]["errors"][0]["code"]) == (409, "order_already_canceled")


def test_cancel_after_payment_is_refused(sdk):
    order = paid_order(sdk)
    result = sdk.order().cancel(order["id"])
    assert (result["status"], result["response"]["errors"][0]["code"]) == (409, "cannot_cancel_order")


def test_cancel_replays_with_the_same_key(sdk):
    order = created_order(sdk)
    first = sdk.order().cancel(order["id"], key_options("cancel-1"))
    again = sdk.order().cancel(order["id"], key_options("cancel-1"))
    assert (again["status"], again["response"]) == (200, first["response"])
    assert queued() == ["order.canceled"]  # a replay changes nothing and notifies nothing


# --- Simulated outcomes ---------------------------------------------------------------------------


def test_approved_payment_processes_the_order(sdk, sent):
    order = created_order(sdk)

    settled = engine.simulate(order["id"], "approved")

    got = sdk.order().get(order["id"])["response"]
    assert got == json.loads(json.dumps(settled))
    assert (got["status"], got["status_detail"]) == ("processed", "accredited")
    assert got["total_paid_amount"] == "25.90"
    payment = got["transactions"]["payments"][0]
    assert (payment["status"], payment["status_detail"]) == ("processed", "accredited")
    assert payment["paid_amount"] == "25.90"
    assert payment["reference_id"].isdigit()
    assert payment["payment_method"] == {"id": "account_money", "type": "account_money", "installments": 1}
    assert got["last_updated_date"] >= got["created_date"]
    assert sent == [] and queued() == ["order.processed"]


def test_a_wrong_paid_amount_can_be_rehearsed(sdk):
    order = paid_order(sdk, paid_amount="20.00")
    assert order["total_amount"] == "25.90"
    assert order["total_paid_amount"] == "20.00"
    assert order["transactions"]["payments"][0]["paid_amount"] == "20.00"


def test_rejected_payment_fails_the_order(sdk):
    order = created_order(sdk)

    engine.simulate(order["id"], "rejected")

    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("failed", "failed")
    payment = got["transactions"]["payments"][0]
    assert (payment["status"], payment["status_detail"]) == ("failed", "rejected_by_issuer")
    assert "total_paid_amount" not in got and "paid_amount" not in payment
    assert queued() == ["order.failed"]
    assert sdk.payment().get(payment["reference_id"])["response"]["status"] == "rejected"


def test_expired_outcome(sdk):
    order = created_order(sdk)
    engine.simulate(order["id"], "expired")
    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["transactions"]["payments"][0]["status"]) == ("expired", "expired")
    assert queued() == ["order.expired"]


def test_only_a_created_order_can_be_settled(sdk):
    order = paid_order(sdk)
    with pytest.raises(engine.ApiError) as refused:
        engine.simulate(order["id"], "rejected")
    assert (refused.value.status, refused.value.code) == (409, "invalid_order_status")
    with pytest.raises(engine.ApiError) as missing:
        engine.simulate("ORD01JQ4S4KY8HWQ6NA5PXB65B3D3", "approved")
    assert missing.value.status == 404


@pytest.mark.parametrize(
    "kwargs",
    [
        {"outcome": "maybe"},
        {"outcome": "approved", "duplicates": 11},
        {"outcome": "approved", "duplicates": -1},
        {"outcome": "approved", "delay_s": 31},
        {"outcome": "approved", "delay_s": "1"},
        {"outcome": "approved", "paid_amount": "abc"},
        {"outcome": "approved", "paid_amount": "0.00"},
        {"outcome": "approved", "paid_amount": "1.234"},
        {"outcome": "approved", "signature_ts": "us"},
    ],
)
def test_simulate_validates_its_input(sdk, kwargs):
    order = created_order(sdk)
    outcome = kwargs.pop("outcome")
    with pytest.raises(engine.ApiError) as refused:
        engine.simulate(order["id"], outcome, **kwargs)
    assert refused.value.status == 400
    assert refused.value.body["errors"][0]["code"] in ("property_value", "property_type")
    assert SimNotification.objects.count() == 0


# --- Refunds --------------------------------------------------------------------------------------


def test_a_refund_answers_processing_and_is_settled_later(sdk, sent):
    order = paid_order(sdk)
    payment_id = order["transactions"]["payments"][0]["id"]
    SimNotification.objects.all().delete()

    result = refund(sdk, order, "10.00")

    assert result["status"] == 201
    answer = result["response"]
    assert set(answer) == {"id", "status", "status_detail", "transactions"}
    assert (answer["id"], answer["status"], answer["status_detail"]) == (order["id"], "processed", "accredited")
    [first] = answer["transactions"]["refunds"]
    assert REF_ID.match(first["id"]) and first["reference_id"].isdigit()
    assert first["transaction_id"] == payment_id
    assert (first["amount"], first["status"]) == ("10.00", "processing")

    # Until Mercado Pago settles it, nothing is refunded, the amount is reserved and nobody is told.
    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("processed", "accredited")
    assert "refunded_amount" not in got["transactions"]["payments"][0]
    assert [(r["id"], r["status"]) for r in got["transactions"]["refunds"]] == [(first["id"], "processing")]
    assert queued() == [] and sent == []
    assert engine.confirm_refunds() == 0  # not due yet (an hour from now)

    assert engine.confirm_refunds(everything=True) == 1

    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("processed", "partially_refunded")
    assert got["transactions"]["payments"][0]["refunded_amount"] == "10.00"
    assert got["transactions"]["payments"][0]["status_detail"] == "partially_refunded"
    assert [(r["amount"], r["status"]) for r in got["transactions"]["refunds"]] == [("10.00", "processed")]
    assert got["last_updated_date"] >= order["last_updated_date"]
    assert queued() == ["order.refunded"] and sent == []
    send_everything()
    [notified] = sent
    assert notified["body"]["data"]["status_detail"] == "partially_refunded"
    assert notified["body"]["data"]["transactions"]["refunds"][0]["status"] == "processed"

    rest = refund(sdk, order, "15.90")
    assert rest["status"] == 201
    assert [r["amount"] for r in rest["response"]["transactions"]["refunds"]] == ["15.90"]  # only the new one
    engine.confirm_refunds(order["id"], everything=True)

    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("refunded", "refunded")
    payment = got["transactions"]["payments"][0]
    assert (payment["status"], payment["refunded_amount"]) == ("refunded", "25.90")
    assert got["total_paid_amount"] == "25.90"  # what was paid stays visible
    assert len(got["transactions"]["refunds"]) == 2

    again = refund(sdk, order)
    assert (again["status"], again["response"]["errors"][0]["code"]) == (409, "order_already_refunded")


def test_full_refund_with_no_body(sdk, sent):
    order = paid_order(sdk)
    send_everything()
    sent.clear()

    result = sdk.order().refund(order["id"])

    assert result["status"] == 201
    assert result["response"]["transactions"]["refunds"][0]["amount"] == "25.90"
    engine.confirm_refunds(everything=True)
    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("refunded", "refunded")
    send_everything()
    assert [(d["body"]["action"], d["body"]["data"]["status"]) for d in sent] == [("order.refunded", "refunded")]


def test_full_refund_after_a_partial_one_refunds_the_rest(sdk):
    order = paid_order(sdk)
    refund(sdk, order, "5.90")
    engine.confirm_refunds(everything=True)
    rest = refund(sdk, order)
    assert rest["response"]["transactions"]["refunds"][0]["amount"] == "20.00"


def test_refund_errors(sdk):
    unpaid = created_order(sdk)
    result = sdk.order().refund(unpaid["id"])
    assert (result["status"], result["response"]["errors"][0]["code"]) == (409, "cannot_refund_order")

    order = paid_order(sdk)
    payment_id = order["transactions"]["payments"][0]["id"]
    too_much = refund(sdk, order, "25.91")
    assert (too_much["status"], too_much["response"]["errors"][0]["code"]) == (400, "refund_amount_exceeds")

    unknown = sdk.order().refund(
        order["id"], {"transactions": [{"id": "PAY01JQ4S4KY8HWQ6NA5PXB65B3D3", "amount": "1.00"}]}
    )
    assert (unknown["status"], unknown["response"]["errors"][0]["code"]) == (404, "transaction_not_found")

    bad = sdk.order().refund(order["id"], {"transactions": [{"id": payment_id, "amount": 1}]})
    assert (bad["status"], bad["response"]["errors"][0]["code"]) == (400, "property_type")
    assert SimRefund.objects.count() == 0


def test_refund_in_progress_then_exceeding_across_refunds(sdk):
    order = paid_order(sdk)
    first = refund(sdk, order, "20.00")
    assert first["status"] == 201
    # Not settled yet: Mercado Pago says a refund is in progress.
    busy = refund(sdk, order, "1.00")
    assert (busy["status"], busy["response"]["errors"][0]["code"]) == (409, "refund_in_progress")
    engine.confirm_refunds(order["id"], everything=True)
    over = refund(sdk, order, "6.00")
    assert (over["status"], over["response"]["errors"][0]["code"]) == (400, "refund_amount_exceeds")


def test_a_key_refused_as_in_progress_creates_the_refund_later_then_replays(sdk):
    order = paid_order(sdk)
    assert refund(sdk, order, "10.00", key="refund-a")["status"] == 201

    busy = refund(sdk, order, "5.00", key="refund-b")
    assert (busy["status"], busy["response"]["errors"][0]["code"]) == (409, "refund_in_progress")
    engine.confirm_refunds(everything=True)

    later = refund(sdk, order, "5.00", key="refund-b")  # the refused request did not use up its key
    assert later["status"] == 201
    [created] = later["response"]["transactions"]["refunds"]
    assert (created["amount"], created["status"]) == ("5.00", "processing")
    engine.confirm_refunds(everything=True)

    replay = refund(sdk, order, "5.00", key="refund-b")
    assert (replay["status"], replay["response"]) == (201, later["response"])  # the first answer, as it was
    assert SimRefund.objects.count() == 2


def test_refund_honours_the_idempotency_key(sdk):
    order = paid_order(sdk)
    first = refund(sdk, order, "10.00", key="refund-1")
    again = refund(sdk, order, "10.00", key="refund-1")
    other = refund(sdk, order, "9.00", key="refund-1")

    assert (again["status"], again["response"]) == (201, first["response"])
    assert (other["status"], other["response"]["errors"][0]["code"]) == (409, "idempotency_key_already_used")
    assert SimRefund.objects.count() == 1


def test_a_failed_refund_gives_the_amount_back(sdk, sent):
    order = paid_order(sdk)
    reference_id = order["transactions"]["payments"][0]["reference_id"]
    SimNotification.objects.all().delete()
    first = refund(sdk, order)["response"]["transactions"]["refunds"][0]

    assert engine.confirm_refunds(everything=True, outcome="failed") == 1

    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("processed", "accredited")  # nothing was refunded
    assert "refunded_amount" not in got["transactions"]["payments"][0]
    assert [(r["id"], r["status"]) for r in got["transactions"]["refunds"]] == [(first["id"], "failed")]
    payment = sdk.payment().get(reference_id)["response"]
    assert (payment["status"], payment["transaction_amount_refunded"]) == ("approved", 0)
    assert [r["status"] for r in payment["refunds"]] == ["rejected"]
    assert queued() == ["order.refunded"]  # the order changed: Mercado Pago says so

    again = refund(sdk, order)  # the whole amount is refundable again
    assert again["status"] == 201
    assert again["response"]["transactions"]["refunds"][0]["amount"] == "25.90"
    engine.confirm_refunds(everything=True)
    assert sdk.order().get(order["id"])["response"]["status"] == "refunded"


def test_a_refund_settles_with_its_own_outcome_unless_told_otherwise(sdk):
    order = paid_order(sdk)
    refund(sdk, order, "10.00")
    SimRefund.objects.update(outcome="failed")
    assert engine.confirm_refunds(everything=True) == 1
    assert SimRefund.objects.get().status == "failed"
    with pytest.raises(engine.ApiError) as refused:
        engine.confirm_refunds(outcome="approved")
    assert (refused.value.status, refused.value.code) == (400, "property_value")


def test_refunds_settle_when_due_and_lazily_when_the_order_is_read(sdk, settings):
    order = paid_order(sdk)
    SimNotification.objects.all().delete()
    settings.MERCADOPAGO_SIMULATOR_REFUND_DELAY = 5
    before = timezone.now()
    refund(sdk, order, "10.00")
    stored = SimRefund.objects.get()
    assert before + timedelta(seconds=5) <= stored.confirm_at <= timezone.now() + timedelta(seconds=5)
    assert engine.confirm_refunds(now=stored.confirm_at - timedelta(seconds=1)) == 0

    # Its time has come and nobody ran the clock: whoever reads the order sees it settled (and it is notified).
    SimRefund.objects.update(confirm_at=timezone.now() - timedelta(seconds=1))
    got = sdk.order().get(order["id"])["response"]
    assert [r["status"] for r in got["transactions"]["refunds"]] == ["processed"]
    assert (got["status"], got["status_detail"]) == ("processed", "partially_refunded")
    assert queued() == ["order.refunded"]
    assert engine.confirm_refunds() == 0


def test_a_due_refund_is_settled_before_the_next_refund_is_judged(sdk):
    order = paid_order(sdk)
    refund(sdk, order, "10.00")
    SimRefund.objects.update(confirm_at=timezone.now() - timedelta(seconds=1))
    assert refund(sdk, order, "15.90")["status"] == 201  # not refund_in_progress: the first one is done
    assert list(SimRefund.objects.values_list("status", flat=True)) == ["processed", "processing"]


def test_confirm_refunds_of_one_order_leaves_the_others(sdk):
    first, second = paid_order(sdk), paid_order(sdk)
    refund(sdk, first)
    refund(sdk, second)
    assert engine.confirm_refunds(first["id"], everything=True) == 1
    assert sdk.order().get(second["id"])["response"]["transactions"]["refunds"][0]["status"] == "processing"


def test_only_the_orders_owner_can_refund(db):
    owner = mercadopago.SDK("APP_USR-111-010203-abcdef-222", http_client=SimulatorHttpClient())
    stranger = mercadopago.SDK("APP_USR-333-010203-abcdef-444", http_client=SimulatorHttpClient())
    order = paid_order(owner)
    assert (order["user_id"], order["integration_data"]["application_id"]) == ("222", "111")

    result = stranger.order().refund(order["id"])
    assert (result["status"], result["response"]["errors"][0]["code"]) == (400, "invalid_order_owner")


# --- Payments API ---------------------------------------------------------------------------------


def test_payment_of_a_qr_order(sdk):
    order = paid_order(sdk)
    reference_id = order["transactions"]["payments"][0]["reference_id"]

    result = sdk.payment().get(reference_id)

    assert result["status"] == 200
    payment = result["response"]
    assert payment["id"] == int(reference_id)
    assert (payment["status"], payment["status_detail"]) == ("approved", "accredited")
    assert payment["transaction_amount"] == 25.9  # a JSON number in the Payments API
    assert Decimal(str(payment["transaction_amount"])) == Decimal("25.90")
    assert payment["external_reference"] == "order-12_a"
    assert payment["currency_id"] == "BRL"
    assert payment["refunds"] == []

    refund(sdk, order, "5.00")
    payment = sdk.payment().get(reference_id)["response"]
    assert (payment["status"], payment["transaction_amount_refunded"]) == ("approved", 0)
    assert [r["status"] for r in payment["refunds"]] == ["in_process"]

    engine.confirm_refunds(everything=True)
    payment = sdk.payment().get(reference_id)["response"]
    assert (payment["status"], payment["status_detail"]) == ("approved", "partially_refunded")
    assert payment["transaction_amount_refunded"] == 5
    assert [(r["amount"], r["status"], r["payment_id"]) for r in payment["refunds"]] == [
        (5, "approved", int(reference_id))
    ]

    refund(sdk, order)
    engine.confirm_refunds(everything=True)
    assert sdk.payment().get(reference_id)["response"]["status"] == "refunded"


def test_unknown_payment_is_a_payments_api_404(sdk):
    result = sdk.payment().get(12345)
    assert result["status"] == 404
    assert (result["response"]["error"], result["response"]["status"]) == ("not_found", 404)
    assert result["response"]["cause"][0]["code"] == 2000


# --- Chargebacks ----------------------------------------------------------------------------------


def test_a_chargeback_shows_in_the_order_and_the_payments_api_and_is_notified(sdk, sent):
    order = paid_order(sdk)
    payment = order["transactions"]["payments"][0]
    SimNotification.objects.all().delete()

    answer = engine.simulate(order["id"], "charged_back")

    got = sdk.order().get(order["id"])["response"]
    assert got == json.loads(json.dumps(answer))
    assert (got["status"], got["status_detail"]) == ("processed", "accredited")  # the order's own status stays
    assert got["transactions"]["payments"][0]["status"] == "processed"
    [chargeback] = got["transactions"]["chargebacks"]
    assert CHB_ID.match(chargeback["id"])
    assert chargeback == {
        "id": chargeback["id"],
        "transaction_id": payment["id"],
        "case_id": chargeback["case_id"],
        "status": "opened",
        "references": [payment["reference_id"]],
    }
    assert chargeback["case_id"].isdigit()
    assert (SimChargeback.objects.get().id, got["last_updated_date"] >= order["last_updated_date"]) == (
        chargeback["id"],
        True,
    )
    in_payments_api = sdk.payment().get(payment["reference_id"])["response"]
    assert (in_payments_api["status"], in_payments_api["status_detail"]) == ("charged_back", "in_process")

    assert queued() == ["order.processed", "payment.updated"] and sent == []
    assert send_everything() == 2
    by_topic = {parse_qs(urlsplit(d["url"]).query)["type"][0]: d for d in sent}
    order_note, payment_note = by_topic["order"], by_topic["payment"]
    assert order_note["body"]["action"] == "order.processed"
    assert order_note["body"]["data"]["transactions"]["chargebacks"] == [chargeback]
    assert order_note["body"]["data"]["version"] == got_version(order["id"])

    query = parse_qs(urlsplit(payment_note["url"]).query)
    assert query == {"data.id": [payment["reference_id"]], "type": ["payment"]}
    body = payment_note["body"]
    assert set(body) == {"id", "live_mode", "type", "date_created", "user_id", "api_version", "action", "data"}
    assert (body["type"], body["action"], body["api_version"], body["live_mode"]) == (
        "payment", "payment.updated", "v1", False,
    )  # fmt: skip
    assert body["data"] == {"id": payment["reference_id"]}
    assert isinstance(body["id"], int) and body["user_id"] == int(order["user_id"])
    headers = payment_note["headers"]
    parts = signature_parts(headers)
    assert parts["v1"] == expected_signature(payment["reference_id"], headers["x-request-id"], parts["ts"])


def got_version(order_id: str) -> int:
    return SimOrder.objects.get(pk=order_id).version


def test_a_partially_refunded_order_can_be_charged_back_once(sdk):
    order = paid_order(sdk)
    refund(sdk, order, "5.00")
    engine.confirm_refunds(everything=True)

    engine.simulate(order["id"], "charged_back", notify=False)
    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("processed", "partially_refunded")
    assert len(got["transactions"]["chargebacks"]) == 1

    with pytest.raises(engine.ApiError) as twice:
        engine.simulate(order["id"], "charged_back")
    assert (twice.value.status, twice.value.code) == (409, "chargeback_already_exists")


def test_only_a_paid_order_can_be_charged_back(sdk):
    order = created_order(sdk)
    with pytest.raises(engine.ApiError) as refused:
        engine.simulate(order["id"], "charged_back")
    assert (refused.value.status, refused.value.code) == (409, "invalid_order_status")
    assert SimChargeback.objects.count() == 0 and queued() == []


# --- Notifications --------------------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "digits"), [("ms", 13), ("s", 10)])
def test_notification_is_sent_as_documented_and_signed(sdk, sent, unit, digits):
    order = created_order(sdk)

    engine.simulate(order["id"], "approved", signature_ts=unit)
    assert sent == []  # never inside the call that caused it
    assert send_everything() == 1

    [delivery] = sent
    url = urlsplit(delivery["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == settings.MERCADOPAGO_NOTIFICATION_URL
    assert parse_qs(url.query) == {"data.id": [order["id"]], "type": ["order"]}
    assert url.query.startswith("data.id=")

    headers = delivery["headers"]
    assert headers["Content-Type"] == "application/json"
    request_id = headers["x-request-id"]
    assert uuid.UUID(request_id).version == 4
    parts = signature_parts(headers)
    assert set(parts) == {"ts", "v1"}
    assert parts["ts"].isdigit() and len(parts["ts"]) == digits
    data_id = parse_qs(url.query)["data.id"][0]
    assert ORDER_ID.match(data_id)  # upper case, and signed as such
    assert hmac.compare_digest(parts["v1"], expected_signature(data_id, request_id, parts["ts"]))
    assert parts["v1"] != expected_signature(data_id.lower(), request_id, parts["ts"])

    body = delivery["body"]
    assert body["action"] == "order.processed"
    assert (body["api_version"], body["type"], body["live_mode"]) == ("v1", "order", False)
    assert body["user_id"] == order["user_id"]
    assert body["application_id"] == order["integration_data"]["application_id"]
    assert body["id"] and ORDERS_DATE.match(body["date_created"])
    data = body["data"]
    assert data["id"] == order["id"]
    assert data["external_reference"] == "order-12_a"
    assert (data["status"], data["status_detail"], data["type"]) == ("processed", "accredited", "qr")
    assert (data["total_amount"], data["total_paid_amount"]) == ("25.90", "25.90")
    assert data["version"] == 2
    [payment] = data["transactions"]["payments"]
    assert payment["reference"]["id"].isdigit()
    assert (payment["status"], payment["status_detail"], payment["paid_amount"]) == ("processed", "accredited", "25.90")
    assert SimNotification.objects.get().status == "sent"


def test_the_sdks_own_validator_accepts_the_signature(sdk, sent):
    order = created_order(sdk)
    engine.simulate(order["id"], "approved", signature_ts="s")  # the SDK's validator reads ts as seconds
    send_everything()

    [delivery] = sent
    data_id = parse_qs(urlsplit(delivery["url"]).query)["data.id"][0]
    headers = delivery["headers"]
    WebhookSignatureValidator.validate(
        headers["x-signature"],
        headers["x-request-id"],
        data_id,
        settings.MERCADOPAGO_WEBHOOK_SECRET,
        tolerance_seconds=60,
    )
    assert notify.sign(data_id=data_id, request_id="r", ts="1", secret="s") != notify.sign(
        data_id=data_id.lower(), request_id="r", ts="1", secret="s"
    )


def test_the_body_is_a_snapshot_of_the_moment(sdk, sent):
    order = created_order(sdk)
    engine.simulate(order["id"], "approved")
    refund(sdk, sdk.order().get(order["id"])["response"])
    engine.confirm_refunds(everything=True)
    send_everything()
    assert [(d["body"]["action"], d["body"]["data"]["status"]) for d in sent] == [
        ("order.processed", "processed"),
        ("order.refunded", "refunded"),
    ]


def test_duplicates_are_separate_deliveries_of_the_same_notification(sdk, sent):
    order = created_order(sdk)
    engine.simulate(order["id"], "approved", duplicates=2)

    rows = list(SimNotification.objects.all())
    assert len(rows) == 3 and len({row.request_id for row in rows}) == 3
    send_everything()
    assert len(sent) == 3
    assert {d["headers"]["x-request-id"] for d in sent} == {row.request_id for row in rows}
    assert all(d["body"] == sent[0]["body"] for d in sent)


def test_nothing_is_queued_when_the_callers_transaction_rolls_back(sdk, sent):
    order = created_order(sdk)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        engine.simulate(order["id"], "approved")
        assert queued() == ["order.processed"]
        raise Boom

    assert queued() == [] and send_everything() == 0 and sent == []
    assert SimOrder.objects.get(pk=order["id"]).status == "created"

    engine.simulate(order["id"], "approved", notify=False)
    assert queued() == []


def test_notifications_are_sent_when_due_not_in_the_call(sdk, sent, settings):
    settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY = 0  # due at once, and still not sent inside the call
    order = created_order(sdk)
    engine.simulate(order["id"], "approved")
    assert sent == [] and queued() == ["order.processed"]
    assert notify.send_due() == 1 and len(sent) == 1

    settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY = 5
    sdk.order().cancel(create(sdk, qr_body(external_reference="other"))["response"]["id"])
    row = SimNotification.objects.get(status="queued")
    assert timedelta(seconds=4) < row.due_at - row.created_at <= timedelta(seconds=5)
    assert notify.send_due() == 0
    assert notify.send_due(now=row.due_at - timedelta(milliseconds=1)) == 0
    assert notify.send_due(now=row.due_at) == 1
    assert [d["body"]["action"] for d in sent] == ["order.processed", "order.canceled"]
    assert notify.send_due(everything=True) == 0  # sent once


def test_delay_s_sets_when_one_notification_is_due(sdk):
    order = created_order(sdk)
    engine.simulate(order["id"], "approved", delay_s=2.5)
    row = SimNotification.objects.get()
    assert row.due_at - row.created_at == timedelta(seconds=2.5)


def test_a_failed_attempt_is_retried_with_backoff_and_the_same_request_id(sdk, monkeypatch):
    answers = iter([ConnectionError("refused"), 500, 200])
    attempts = []

    def flaky(url, headers, body):
        attempts.append((headers["x-request-id"], headers["x-signature"]))
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(notify, "deliver", flaky)
    order = created_order(sdk)
    engine.simulate(order["id"], "approved")
    start = timezone.now() + HOUR  # when it is due, give or take

    assert notify.send_due(now=start) == 1
    row = SimNotification.objects.get()
    assert (row.status, row.attempts, row.due_at) == ("queued", 1, start + timedelta(seconds=0.5))
    assert "ConnectionError" in row.last_error
    assert notify.send_due(now=start + timedelta(seconds=0.4)) == 0  # backing off
    assert notify.send_due(now=start + timedelta(seconds=0.5)) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("queued", 2, "HTTP 500")
    assert notify.send_due(everything=True) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, "")
    assert row.sent_at is not None
    assert {request_id for request_id, _ in attempts} == {row.request_id}  # one delivery, one request id


def test_a_delivery_is_given_up_after_four_attempts_without_raising(sdk, monkeypatch, caplog):
    attempts = []

    def down(url, headers, body):
        attempts.append(url)
        raise ConnectionError("refused")

    monkeypatch.setattr(notify, "deliver", down)
    order = created_order(sdk)
    engine.simulate(order["id"], "approved")
    for _ in range(6):
        notify.send_due(everything=True)
    assert len(attempts) == 4  # the first try and three retries, then it gives up quietly
    row = SimNotification.objects.get()
    assert (row.status, row.attempts) == ("failed", 4)
    assert "gave up" in caplog.text


def test_a_row_claimed_by_one_sender_is_not_sent_by_another(sdk, sent):
    order = created_order(sdk)
    engine.simulate(order["id"], "approved")
    mine, theirs = SimNotification.objects.get(), SimNotification.objects.get()

    assert notify.claim(mine) is True
    assert notify.claim(theirs) is False  # the same row, read before the claim: the UPDATE finds it changed
    assert notify.send_due(everything=True) == 0 and sent == []

    # A sender that dies while holding the row: past its lease another one takes it over, same request id.
    assert notify.send_due(now=timezone.now() + notify.LEASE + timedelta(seconds=1)) == 1
    assert [d["headers"]["x-request-id"] for d in sent] == [mine.request_id]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_senders_never_send_the_same_row(monkeypatch):
    sdk = mercadopago.SDK("TEST-token", http_client=SimulatorHttpClient())
    order = created_order(sdk)
    engine.simulate(order["id"], "approved", duplicates=5)
    lock = threading.Lock()
    sent_ids = []

    def slow(url, headers, body):
        time.sleep(0.01)
        with lock:
            sent_ids.append(headers["x-request-id"])
        return 200

    monkeypatch.setattr(notify, "deliver", slow)
    start = threading.Barrier(2)
    counts = []

    def sender():
        try:
            start.wait()
            counts.append(notify.send_due(everything=True))
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(sent_ids) == sorted(SimNotification.objects.values_list("request_id", flat=True))
    assert len(set(sent_ids)) == len(sent_ids) == 6 and sum(counts) == 6
    assert set(SimNotification.objects.values_list("status", flat=True)) == {"sent"}


def test_the_notification_url_keeps_its_own_query_string():
    assert notify.target_url("https://h/x?token=1", "ORDABC") == "https://h/x?token=1&data.id=ORDABC&type=order"
    assert notify.target_url("https://h/x", "123", "payment") == "https://h/x?data.id=123&type=payment"


# --- The pump -------------------------------------------------------------------------------------


@pytest.fixture
def autopump(settings, monkeypatch):
    """The pump on, with short delays; stopped afterwards."""
    settings.MERCADOPAGO_SIMULATOR_AUTOPUMP = True
    settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY = 0.2
    settings.MERCADOPAGO_SIMULATOR_REFUND_DELAY = 0.2
    monkeypatch.setattr(pump, "IDLE_EXIT", 0.5)
    pump.stop()
    yield
    pump.stop()


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.django_db(transaction=True)
def test_the_pump_sends_and_settles_by_itself(autopump, monkeypatch):
    delivered = []

    def capture(url, headers, body):
        delivered.append((json.loads(body)["action"], threading.current_thread()))
        return 200

    monkeypatch.setattr(notify, "deliver", capture)
    sdk = mercadopago.SDK("TEST-token", http_client=SimulatorHttpClient())
    order = created_order(sdk)
    assert pump.running()  # every API call wakes it

    engine.simulate(order["id"], "approved")
    assert delivered == []  # the call has returned; the notification comes later
    assert wait_for(lambda: delivered)
    [(action, thread)] = delivered
    assert action == "order.processed"
    assert thread is not threading.current_thread() and thread.daemon and thread.name == "mp-simulator-pump"
    assert wait_for(lambda: SimNotification.objects.filter(status="sent").count() == 1)

    answer = refund(sdk, sdk.order().get(order["id"])["response"])["response"]
    assert answer["transactions"]["refunds"][0]["status"] == "processing"
    assert wait_for(lambda: [a for a, _ in delivered] == ["order.processed", "order.refunded"])
    assert SimRefund.objects.get().status == "processed"

    assert wait_for(lambda: not pump.running())  # idle: it stops, and the next wake() starts it again
    pump.wake()
    assert pump.running()


def test_wake_does_nothing_with_autopump_off(settings):
    pump.stop()
    settings.MERCADOPAGO_SIMULATOR_AUTOPUMP = False
    pump.wake()
    assert not pump.running()


# --- HTTP views and the pay page ------------------------------------------------------------------


API_HEADERS = {"HTTP_AUTHORIZATION": "Bearer TEST-token", "content_type": "application/json"}


def test_the_api_over_http(db, client, sent):
    created = client.post("/mp-simulator/v1/orders", json.dumps(qr_body()), HTTP_X_IDEMPOTENCY_KEY="h1", **API_HEADERS)
    assert created.status_code == 201
    order_id = created.json()["id"]

    got = client.get(f"/mp-simulator/v1/orders/{order_id}", HTTP_AUTHORIZATION="Bearer TEST-token")
    assert got.status_code == 200 and got.json()["id"] == order_id

    assert client.get("/mp-simulator/v1/orders/" + order_id).status_code == 401
    missing = client.get("/mp-simulator/v1/nothing", HTTP_AUTHORIZATION="Bearer t")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "not_found"

    settled = client.post(
        f"/mp-simulator/v1/orders/{order_id}/simulate",
        json.dumps({"outcome": "approved", "duplicates": 1, "paid_amount": "25.90", "signature_ts": "s"}),
        content_type="application/json",
    )
    assert settled.status_code == 200
    assert settled.json()["status"] == "processed"
    assert queued() == ["order.processed"] * 2 and sent == []
    SimNotification.objects.all().delete()

    other_id = client.post(
        "/mp-simulator/v1/orders",
        json.dumps(qr_body(external_reference="other")),
        HTTP_X_IDEMPOTENCY_KEY="h3",
        **API_HEADERS,
    ).json()["id"]
    client.post(
        f"/mp-simulator/v1/orders/{other_id}/simulate", '{"outcome": "approved"}', content_type="application/json"
    )
    charged_back = client.post(
        f"/mp-simulator/v1/orders/{other_id}/simulate",
        json.dumps({"outcome": "charged_back", "duplicates": 1}),
        content_type="application/json",
    )
    assert charged_back.status_code == 200 and charged_back.json()["transactions"]["chargebacks"]
    assert queued(topic="payment") == ["payment.updated"] * 2

    # A full refund has no body at all ("{}" is not empty: Mercado Pago wants the transactions then).
    refunded = client.post(f"/mp-simulator/v1/orders/{order_id}/refund", "", HTTP_X_IDEMPOTENCY_KEY="h2", **API_HEADERS)
    assert refunded.status_code == 201
    assert refunded.json()["transactions"]["refunds"][0]["status"] == "processing"
    order_url = f"/mp-simulator/v1/orders/{order_id}"
    assert client.get(order_url, HTTP_AUTHORIZATION="Bearer t").json()["status"] == "processed"

    confirmed = client.post(f"{order_url}/refunds/confirm", "", content_type="application/json")  # no body
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "refunded"
    assert client.get(order_url, HTTP_AUTHORIZATION="Bearer t").json()["status"] == "refunded"
    assert queued()[-1] == "order.refunded"
    charged_back = client.post(
        f"{order_url}/simulate", json.dumps({"outcome": "charged_back"}), content_type="application/json"
    )
    assert (charged_back.status_code, charged_back.json()["errors"][0]["code"]) == (409, "invalid_order_status")


def test_a_failing_refund_can_be_scripted_over_http(sdk, client):
    order = paid_order(sdk)
    refund(sdk, order)
    response = client.post(
        f"/mp-simulator/v1/orders/{order['id']}/refunds/confirm",
        json.dumps({"outcome": "failed"}),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["transactions"]["refunds"][0]["status"] == "failed"
    assert response.json()["status_detail"] == "accredited"

    again = client.post(f"/mp-simulator/v1/orders/{order['id']}/refunds/confirm", "", content_type="application/json")
    assert (again.status_code, again.json()["errors"][0]["code"]) == (409, "no_refund_in_progress")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"outcome": "maybe"}', "property_value"),
        ('{"outcome": "approved"}', "property_value"),
        ('{"outcome": 1}', "property_type"),
        ('{"outcome": null}', "property_type"),
        ('{"outcome": "failed", "delay_s": 1}', "unsupported_properties"),
        ("[1]", "property_type"),
        ('"failed"', "property_type"),
        ("{", "json_syntax_error"),
    ],
)
def test_the_refunds_confirm_hook_validates_its_input(sdk, client, body, code):
    order = paid_order(sdk)
    refund(sdk, order)
    url = f"/mp-simulator/v1/orders/{order['id']}/refunds/confirm"

    response = client.post(url, body, content_type="application/json")

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["code"], bool(error["message"])) == (code, True)
    assert SimRefund.objects.get().status == "processing"


def test_the_refunds_confirm_hook_knows_its_orders(db, client):
    assert client.get("/mp-simulator/v1/orders/ORD01JQ4S4KY8HWQ6NA5PXB65B3D3/refunds/confirm").status_code == 405
    bad = client.post("/mp-simulator/v1/orders/not-an-order/refunds/confirm", "", content_type="application/json")
    assert (bad.status_code, bad.json()["errors"][0]["code"]) == (400, "invalid_path_param")
    missing = client.post(
        "/mp-simulator/v1/orders/ORD01JQ4S4KY8HWQ6NA5PXB65B3D3/refunds/confirm", "", content_type="application/json"
    )
    assert (missing.status_code, missing.json()["errors"][0]["code"]) == (404, "order_not_found")


@pytest.mark.parametrize(
    "body",
    ['{"outcome": "approved", "duplicates": "2"}', '{"duplicates": 1}', '{"outcome": "approved", "x": 1}', "[1]", "{"],
)
def test_simulate_view_refuses_bad_input(sdk, client, body):
    order = created_order(sdk)
    response = client.post(f"/mp-simulator/v1/orders/{order['id']}/simulate", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"]
    assert SimOrder.objects.get(pk=order["id"]).status == "created"


def test_pay_page_shows_the_order_and_pays_it(sdk, sent):
    order = created_order(sdk)
    browser = Client(enforce_csrf_checks=True, headers={"Accept-Language": "pt-BR"})  # the buyer's phone
    url = f"/mp-simulator/pay/{order['id']}/"

    page = browser.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "R$ 25,90" in html and "Pedido 12" in html and "X-Burger" in html
    assert "Pagar" in html and "Recusar" in html and "Aguardando pagamento" in html
    assert "http" not in html.split("<body>", 1)[1].replace(url, "")  # no external assets

    assert browser.post(url, {"action": "pay"}).status_code == 403  # no CSRF token
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    paid = browser.post(url, {"action": "pay", "csrfmiddlewaretoken": token})
    assert paid.status_code == 302 and paid["Location"] == url

    result = browser.get(url).content.decode()
    assert "Pagamento aprovado" in result and 'value="pay"' not in result
    assert sdk.order().get(order["id"])["response"]["status"] == "processed"
    assert queued() == ["order.processed"] and sent == []

    again = browser.post(url, {"action": "pay", "csrfmiddlewaretoken": token})
    assert again.status_code == 409  # already paid: the page says so, nothing changes


def test_pay_page_settles_due_refunds_like_every_read(sdk, client):
    order = paid_order(sdk)
    refund(sdk, order)
    SimRefund.objects.update(confirm_at=timezone.now() - timedelta(seconds=1))
    page = client.get(f"/mp-simulator/pay/{order['id']}/", headers={"Accept-Language": "pt-BR"})
    assert "Pagamento devolvido" in page.content.decode()


def test_pay_page_reject_and_unknown_order(sdk, client):
    order = created_order(sdk)
    url = f"/mp-simulator/pay/{order['id']}/"
    assert client.post(url, {"action": "reject"}).status_code == 302
    assert "Pagamento recusado" in client.get(url, headers={"Accept-Language": "pt-BR"}).content.decode()
    assert "Payment declined" in client.get(url, headers={"Accept-Language": "en"}).content.decode()
    assert client.get("/mp-simulator/pay/ORD01JQ4S4KY8HWQ6NA5PXB65B3D3/").status_code == 404


def test_absurd_input_gets_mercado_pagos_error_shape_not_a_crash(db):
    from payments.simulator.api import dispatch

    headers = {"Authorization": "Bearer APP_USR-x", "x-idempotency-key": "absurd"}
    deep = "[" * 5000 + "]" * 5000
    status, body = dispatch("POST", "/v1/orders", headers=headers, body=deep)
    assert status == 400 and "errors" in body
    body_json = (
        '{"type": "qr", "external_reference": "r1", "total_amount": "1.00", "expiration_time": "P99999999Y",'
        ' "config": {"qr": {"external_pos_id": "P1", "mode": "dynamic"}}, "transactions": {"payments": [{"amount": "1.00"}]}}'
    )
    status, body = dispatch("POST", "/v1/orders", headers={**headers, "x-idempotency-key": "absurd-2"}, body=body_json)
    assert status == 400 and "errors" in body
    status, body = dispatch("GET", "/v1/payments/" + "9" * 5000, headers=headers)
    assert status == 404
    client = Client()
    response = client.post("/mp-simulator/v1/orders/ORDX/simulate", deep, content_type="application/json")
    assert response.status_code == 400
    response = client.post("/mp-simulator/v1/orders/ORDX/refunds/confirm", deep, content_type="application/json")
    assert response.status_code == 400


def test_the_admin_shows_notifications_and_chargebacks_read_only(sdk, client):
    from django.contrib.auth.models import User

    order = paid_order(sdk)
    engine.simulate(order["id"], "charged_back")
    client.force_login(User.objects.create_superuser("root", password="root"))
    for model in ("simnotification", "simchargeback", "simrefund"):
        page = client.get(f"/admin/mp_simulator/{model}/")
        assert page.status_code == 200, model
        assert client.get(f"/admin/mp_simulator/{model}/add/").status_code == 403
    row = SimNotification.objects.first()
    page = client.get(f"/admin/mp_simulator/simnotification/{row.pk}/change/")
    assert page.status_code == 200 and row.request_id in page.content.decode()
