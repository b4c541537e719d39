"""The Mercado Pago simulator, driven through the official SDK (as the payments domain drives it), its HTTP
views, the pay page and the notifications it sends.

Notifications are captured by replacing the simulator's own transport (`notify.deliver`): that is the
Mercado Pago side, so nothing of ours is mocked. Sending is synchronous here (no threads, no sleeping).
"""

import hashlib
import hmac
import json
import re
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import mercadopago
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from mercadopago.config import RequestOptions

from payments.simulator import api, engine, notify
from payments.simulator.client import SimulatorHttpClient
from payments.simulator.models import SimOrder, SimRefund

ORDER_ID = re.compile(r"^ORD[0-9A-Z]{26}$")
PAY_ID = re.compile(r"^PAY[0-9A-Z]{26}$")
REF_ID = re.compile(r"^REF[0-9A-Z]{26}$")
ORDERS_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    """Every notification the simulator delivers, as {"url", "headers", "body"}; synchronous."""
    deliveries = []

    def capture(url, headers, body):
        deliveries.append({"url": url, "headers": headers, "body": json.loads(body)})
        return 200

    monkeypatch.setattr(notify, "deliver", capture)
    monkeypatch.setattr(notify, "SEND_IN_BACKGROUND", False)
    return deliveries


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run what waits for the commit (notifications, refund confirmation) as if the transaction committed."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


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


def paid_order(sdk, commit, paid_amount=None) -> dict:
    order = created_order(sdk)
    with commit():
        engine.simulate(order["id"], "approved", paid_amount=paid_amount)
    return sdk.order().get(order["id"])["response"]


def expected_signature(data_id: str, request_id: str, ts: str) -> str:
    """The documented manifest, computed independently of the simulator."""
    manifest = f"id:{data_id.lower()};request-id:{request_id};ts:{ts};"
    return hmac.new(settings.MERCADOPAGO_WEBHOOK_SECRET.encode(), manifest.encode(), hashlib.sha256).hexdigest()


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


def test_an_unpaid_order_past_its_expiration_reads_as_expired(sdk, sent, commit):
    order = created_order(sdk)
    SimOrder.objects.filter(pk=order["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    with commit():
        got = sdk.order().get(order["id"])["response"]

    assert (got["status"], got["status_detail"]) == ("expired", "expired")
    assert got["transactions"]["payments"][0]["status"] == "expired"
    assert sent == []  # a lazy expiry is not notified
    with pytest.raises(engine.ApiError) as refused:
        engine.simulate(order["id"], "approved")
    assert refused.value.status == 409


def test_simulating_expiry_of_an_order_whose_time_is_up_notifies_it(sdk, sent, commit):
    order = created_order(sdk)
    SimOrder.objects.filter(pk=order["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    with commit():
        expired = engine.simulate(order["id"], "expired")
    assert expired["status"] == "expired"
    assert [d["body"]["action"] for d in sent] == ["order.expired"]


def test_cancel_a_created_order(sdk, sent, commit):
    order = created_order(sdk)

    with commit():
        result = sdk.order().cancel(order["id"])

    assert result["status"] == 200
    canceled = result["response"]
    assert (canceled["status"], canceled["status_detail"]) == ("canceled", "canceled")
    payment = canceled["transactions"]["payments"][0]
    assert (payment["status"], payment["status_detail"]) == ("canceled", "canceled_by_api")
    assert [d["body"]["action"] for d in sent] == ["order.canceled"]
    assert sent[0]["body"]["data"]["status"] == "canceled"

    again = sdk.order().cancel(order["id"])
    assert (again["status"], again["response"]["errors"][0]["code"]) == (409, "order_already_canceled")


def test_cancel_after_payment_is_refused(sdk, commit):
    order = paid_order(sdk, commit)
    result = sdk.order().cancel(order["id"])
    assert (result["status"], result["response"]["errors"][0]["code"]) == (409, "cannot_cancel_order")


def test_cancel_replays_with_the_same_key(sdk, commit):
    order = created_order(sdk)
    with commit():
        first = sdk.order().cancel(order["id"], key_options("cancel-1"))
    again = sdk.order().cancel(order["id"], key_options("cancel-1"))
    assert (again["status"], again["response"]) == (200, first["response"])


# --- Simulated outcomes ---------------------------------------------------------------------------


def test_approved_payment_processes_the_order(sdk, sent, commit):
    order = created_order(sdk)

    with commit():
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
    assert [d["body"]["action"] for d in sent] == ["order.processed"]


def test_a_wrong_paid_amount_can_be_rehearsed(sdk, commit):
    order = paid_order(sdk, commit, paid_amount="20.00")
    assert order["total_amount"] == "25.90"
    assert order["total_paid_amount"] == "20.00"
    assert order["transactions"]["payments"][0]["paid_amount"] == "20.00"


def test_rejected_payment_fails_the_order(sdk, sent, commit):
    order = created_order(sdk)

    with commit():
        engine.simulate(order["id"], "rejected")

    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("failed", "failed")
    payment = got["transactions"]["payments"][0]
    assert (payment["status"], payment["status_detail"]) == ("failed", "rejected_by_issuer")
    assert "total_paid_amount" not in got and "paid_amount" not in payment
    assert [d["body"]["action"] for d in sent] == ["order.failed"]
    assert sdk.payment().get(payment["reference_id"])["response"]["status"] == "rejected"


def test_expired_outcome(sdk, sent, commit):
    order = created_order(sdk)
    with commit():
        engine.simulate(order["id"], "expired")
    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["transactions"]["payments"][0]["status"]) == ("expired", "expired")
    assert [d["body"]["action"] for d in sent] == ["order.expired"]


def test_only_a_created_order_can_be_settled(sdk, commit):
    order = paid_order(sdk, commit)
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


# --- Refunds --------------------------------------------------------------------------------------


def test_partial_refunds_up_to_the_paid_amount(sdk, sent, commit):
    order = paid_order(sdk, commit)
    payment_id = order["transactions"]["payments"][0]["id"]
    sent.clear()

    with commit():
        result = sdk.order().refund(order["id"], {"transactions": [{"id": payment_id, "amount": "10.00"}]})

    assert result["status"] == 201
    answer = result["response"]
    assert (answer["id"], answer["status"]) == (order["id"], "processed")
    [refund] = answer["transactions"]["refunds"]
    assert REF_ID.match(refund["id"])
    assert refund["transaction_id"] == payment_id
    assert (refund["amount"], refund["status"]) == ("10.00", "processing")  # confirmed after the answer

    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("processed", "partially_refunded")
    assert got["transactions"]["payments"][0]["refunded_amount"] == "10.00"
    assert got["transactions"]["payments"][0]["status_detail"] == "partially_refunded"
    assert [(r["amount"], r["status"]) for r in got["transactions"]["refunds"]] == [("10.00", "processed")]
    assert [d["body"]["action"] for d in sent] == ["order.refunded"]

    with commit():
        rest = sdk.order().refund(order["id"], {"transactions": [{"id": payment_id, "amount": "15.90"}]})
    assert rest["status"] == 201

    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("refunded", "refunded")
    payment = got["transactions"]["payments"][0]
    assert (payment["status"], payment["refunded_amount"]) == ("refunded", "25.90")
    assert got["total_paid_amount"] == "25.90"  # what was paid stays visible
    assert len(got["transactions"]["refunds"]) == 2

    again = sdk.order().refund(order["id"])
    assert (again["status"], again["response"]["errors"][0]["code"]) == (409, "order_already_refunded")


def test_full_refund_with_no_body(sdk, sent, commit):
    order = paid_order(sdk, commit)
    sent.clear()

    with commit():
        result = sdk.order().refund(order["id"])

    assert result["status"] == 201
    assert result["response"]["transactions"]["refunds"][0]["amount"] == "25.90"
    got = sdk.order().get(order["id"])["response"]
    assert (got["status"], got["status_detail"]) == ("refunded", "refunded")
    assert sent[0]["body"]["data"]["status"] == "refunded"


def test_full_refund_after_a_partial_one_refunds_the_rest(sdk, commit):
    order = paid_order(sdk, commit)
    payment_id = order["transactions"]["payments"][0]["id"]
    with commit():
        sdk.order().refund(order["id"], {"transactions": [{"id": payment_id, "amount": "5.90"}]})
    with commit():
        rest = sdk.order().refund(order["id"])
    assert rest["response"]["transactions"]["refunds"][0]["amount"] == "20.00"


def test_refund_errors(sdk, commit):
    unpaid = created_order(sdk)
    result = sdk.order().refund(unpaid["id"])
    assert (result["status"], result["response"]["errors"][0]["code"]) == (409, "cannot_refund_order")

    order = paid_order(sdk, commit)
    payment_id = order["transactions"]["payments"][0]["id"]
    too_much = sdk.order().refund(order["id"], {"transactions": [{"id": payment_id, "amount": "25.91"}]})
    assert (too_much["status"], too_much["response"]["errors"][0]["code"]) == (400, "refund_amount_exceeds")

    unknown = sdk.order().refund(
        order["id"], {"transactions": [{"id": "PAY01JQ4S4KY8HWQ6NA5PXB65B3D3", "amount": "1.00"}]}
    )
    assert (unknown["status"], unknown["response"]["errors"][0]["code"]) == (404, "transaction_not_found")

    bad = sdk.order().refund(order["id"], {"transactions": [{"id": payment_id, "amount": 1}]})
    assert (bad["status"], bad["response"]["errors"][0]["code"]) == (400, "property_type")
    assert SimRefund.objects.count() == 0


def test_refund_in_progress_then_exceeding_across_refunds(sdk, commit):
    order = paid_order(sdk, commit)
    payment_id = order["transactions"]["payments"][0]["id"]
    first = sdk.order().refund(order["id"], {"transactions": [{"id": payment_id, "amount": "20.00"}]})
    assert first["status"] == 201
    # Not confirmed yet (the transaction has not committed): Mercado Pago says a refund is in progress.
    busy = sdk.order().refund(order["id"], {"transactions": [{"id": payment_id, "amount": "1.00"}]})
    assert (busy["status"], busy["response"]["errors"][0]["code"]) == (409, "refund_in_progress")
    engine.confirm_refunds(order["id"])
    over = sdk.order().refund(order["id"], {"transactions": [{"id": payment_id, "amount": "6.00"}]})
    assert (over["status"], over["response"]["errors"][0]["code"]) == (400, "refund_amount_exceeds")


def test_refund_honours_the_idempotency_key(sdk, commit):
    order = paid_order(sdk, commit)
    payment_id = order["transactions"]["payments"][0]["id"]
    body = {"transactions": [{"id": payment_id, "amount": "10.00"}]}
    with commit():
        first = sdk.order().refund(order["id"], body, key_options("refund-1"))
    again = sdk.order().refund(order["id"], body, key_options("refund-1"))
    other = sdk.order().refund(
        order["id"], {"transactions": [{"id": payment_id, "amount": "9.00"}]}, key_options("refund-1")
    )

    assert (again["status"], again["response"]) == (201, first["response"])
    assert (other["status"], other["response"]["errors"][0]["code"]) == (409, "idempotency_key_already_used")
    assert SimRefund.objects.count() == 1


def test_only_the_orders_owner_can_refund(db, commit):
    owner = mercadopago.SDK("APP_USR-111-010203-abcdef-222", http_client=SimulatorHttpClient())
    stranger = mercadopago.SDK("APP_USR-333-010203-abcdef-444", http_client=SimulatorHttpClient())
    order = paid_order(owner, commit)
    assert (order["user_id"], order["integration_data"]["application_id"]) == ("222", "111")

    result = stranger.order().refund(order["id"])
    assert (result["status"], result["response"]["errors"][0]["code"]) == (400, "invalid_order_owner")


# --- Payments API ---------------------------------------------------------------------------------


def test_payment_of_a_qr_order(sdk, commit):
    order = paid_order(sdk, commit)
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

    with commit():
        sdk.order().refund(
            order["id"], {"transactions": [{"id": order["transactions"]["payments"][0]["id"], "amount": "5.00"}]}
        )
    payment = sdk.payment().get(reference_id)["response"]
    assert (payment["status"], payment["status_detail"]) == ("approved", "partially_refunded")
    assert payment["transaction_amount_refunded"] == 5
    assert [(r["amount"], r["status"], r["payment_id"]) for r in payment["refunds"]] == [
        (5, "approved", int(reference_id))
    ]

    with commit():
        sdk.order().refund(order["id"])
    assert sdk.payment().get(reference_id)["response"]["status"] == "refunded"


def test_unknown_payment_is_a_payments_api_404(sdk):
    result = sdk.payment().get(12345)
    assert result["status"] == 404
    assert (result["response"]["error"], result["response"]["status"]) == ("not_found", 404)
    assert result["response"]["cause"][0]["code"] == 2000


# --- Notifications --------------------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "digits"), [("ms", 13), ("s", 10)])
def test_notification_is_sent_as_documented_and_signed(sdk, sent, commit, unit, digits):
    order = created_order(sdk)

    with commit():
        engine.simulate(order["id"], "approved", signature_ts=unit)

    [delivery] = sent
    url = urlsplit(delivery["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == settings.MERCADOPAGO_NOTIFICATION_URL
    assert parse_qs(url.query) == {"data.id": [order["id"]], "type": ["order"]}
    assert url.query.startswith("data.id=")

    headers = delivery["headers"]
    assert headers["Content-Type"] == "application/json"
    request_id = headers["x-request-id"]
    assert uuid.UUID(request_id).version == 4
    parts = dict(part.split("=", 1) for part in headers["x-signature"].split(","))
    assert set(parts) == {"ts", "v1"}
    assert parts["ts"].isdigit() and len(parts["ts"]) == digits
    data_id = parse_qs(url.query)["data.id"][0]
    assert hmac.compare_digest(parts["v1"], expected_signature(data_id, request_id, parts["ts"]))

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


def test_duplicates_are_separate_deliveries_of_the_same_notification(sdk, sent, commit):
    order = created_order(sdk)
    with commit():
        engine.simulate(order["id"], "approved", duplicates=2)

    assert len(sent) == 3
    assert len({d["headers"]["x-request-id"] for d in sent}) == 3
    assert all(d["body"] == sent[0]["body"] for d in sent)


def test_nothing_is_sent_before_the_commit_or_when_not_asked(sdk, sent, commit):
    order = created_order(sdk)
    engine.simulate(order["id"], "approved")  # the test's transaction never commits
    assert sent == []

    other = create(sdk, qr_body(external_reference="other"))["response"]
    with commit():
        engine.simulate(other["id"], "approved", notify=False)
    assert sent == []


def test_failed_deliveries_are_retried_then_given_up_without_raising(sdk, monkeypatch, commit, caplog):
    monkeypatch.setattr(notify, "RETRY_DELAYS", (0, 0, 0))
    answers = iter([ConnectionError("refused"), 500, 200])
    attempts = []

    def flaky(url, headers, body):
        attempts.append(headers["x-request-id"])
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(notify, "deliver", flaky)
    order = created_order(sdk)
    with commit():
        engine.simulate(order["id"], "approved")
    assert len(attempts) == 3

    def down(url, headers, body):
        attempts.append(url)
        raise ConnectionError("refused")

    monkeypatch.setattr(notify, "deliver", down)
    attempts.clear()
    other = create(sdk, qr_body(external_reference="other"))["response"]
    with commit():
        engine.simulate(other["id"], "approved")
    assert len(attempts) == 4  # the first try and three retries, then it gives up quietly
    assert "gave up" in caplog.text


def test_background_sending_happens_in_another_thread(sdk, monkeypatch, commit):
    monkeypatch.setattr(notify, "SEND_IN_BACKGROUND", True)
    done = threading.Event()
    threads = []

    def capture(url, headers, body):
        threads.append(threading.current_thread())
        done.set()
        return 200

    monkeypatch.setattr(notify, "deliver", capture)
    order = created_order(sdk)
    with commit():
        engine.simulate(order["id"], "approved")
    assert done.wait(5)
    assert threads[0] is not threading.current_thread() and threads[0].daemon


def test_the_notification_url_keeps_its_own_query_string():
    assert notify.target_url("https://h/x?token=1", "ORDABC") == "https://h/x?token=1&data.id=ORDABC&type=order"


# --- HTTP views and the pay page ------------------------------------------------------------------


API_HEADERS = {"HTTP_AUTHORIZATION": "Bearer TEST-token", "content_type": "application/json"}


def test_the_api_over_http(db, client, sent, commit):
    created = client.post("/mp-simulator/v1/orders", json.dumps(qr_body()), HTTP_X_IDEMPOTENCY_KEY="h1", **API_HEADERS)
    assert created.status_code == 201
    order_id = created.json()["id"]

    got = client.get(f"/mp-simulator/v1/orders/{order_id}", HTTP_AUTHORIZATION="Bearer TEST-token")
    assert got.status_code == 200 and got.json()["id"] == order_id

    assert client.get("/mp-simulator/v1/orders/" + order_id).status_code == 401
    missing = client.get("/mp-simulator/v1/nothing", HTTP_AUTHORIZATION="Bearer t")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "not_found"

    with commit():
        settled = client.post(
            f"/mp-simulator/v1/orders/{order_id}/simulate",
            json.dumps({"outcome": "approved", "duplicates": 1, "paid_amount": "25.90", "signature_ts": "s"}),
            content_type="application/json",
        )
    assert settled.status_code == 200
    assert settled.json()["status"] == "processed"
    assert len(sent) == 2

    with commit():
        # A full refund has no body at all ("{}" is not empty: Mercado Pago wants the transactions then).
        refunded = client.post(
            f"/mp-simulator/v1/orders/{order_id}/refund", "", HTTP_X_IDEMPOTENCY_KEY="h2", **API_HEADERS
        )
    assert refunded.status_code == 201
    assert (
        client.get(f"/mp-simulator/v1/orders/{order_id}", HTTP_AUTHORIZATION="Bearer t").json()["status"] == "refunded"
    )


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


def test_pay_page_shows_the_order_and_pays_it(sdk, sent, commit):
    order = created_order(sdk)
    browser = Client(enforce_csrf_checks=True)
    url = f"/mp-simulator/pay/{order['id']}/"

    page = browser.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "R$ 25,90" in html and "Pedido 12" in html and "X-Burger" in html
    assert "Pagar" in html and "Recusar" in html and "Aguardando pagamento" in html
    assert "http" not in html.split("<body>", 1)[1].replace(url, "")  # no external assets

    assert browser.post(url, {"action": "pay"}).status_code == 403  # no CSRF token
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    with commit():
        paid = browser.post(url, {"action": "pay", "csrfmiddlewaretoken": token})
    assert paid.status_code == 302 and paid["Location"] == url

    result = browser.get(url).content.decode()
    assert "Pagamento aprovado" in result and 'value="pay"' not in result
    assert sdk.order().get(order["id"])["response"]["status"] == "processed"
    assert [d["body"]["action"] for d in sent] == ["order.processed"]

    again = browser.post(url, {"action": "pay", "csrfmiddlewaretoken": token})
    assert again.status_code == 409  # already paid: the page says so, nothing changes


def test_pay_page_reject_and_unknown_order(sdk, client):
    order = created_order(sdk)
    url = f"/mp-simulator/pay/{order['id']}/"
    assert client.post(url, {"action": "reject"}).status_code == 302
    assert "Pagamento recusado" in client.get(url).content.decode()
    assert client.get("/mp-simulator/pay/ORD01JQ4S4KY8HWQ6NA5PXB65B3D3/").status_code == 404


def test_absurd_input_gets_mercado_pagos_error_shape_not_a_crash(db):
    from django.test import Client

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
