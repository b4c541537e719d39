"""Bad input on the payment paths, each once a 500, a traceback or a stored absurdity: now a clear refusal."""

import datetime
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from orders.models import Order
from payments.models import Payment, PaymentEvent, Refund, WebhookDelivery
from payments.simulator.api import dispatch
from tests.conftest import new_key, place

URL = "/api/v1/webhooks/mercadopago/"
AUTH = {"Authorization": "Bearer APP_USR-SIMULATOR", "x-idempotency-key": "k"}
transactional = pytest.mark.django_db(transaction=True)
QR_ORDER = {
    "type": "qr",
    "external_reference": "kp-x",
    "total_amount": "10.00",
    "config": {"qr": {"external_pos_id": "POS1", "mode": "dynamic"}},
    "transactions": {"payments": [{"amount": "10.00"}]},
}


def post(query, body="{}", **headers):
    return Client(REMOTE_ADDR="203.0.113.9").post(f"{URL}?{query}", body, content_type="application/json", **headers)


@pytest.fixture
def paid(kiosk, menu, mercadopago, migration_data):
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.deliver()
    return Payment.objects.get(pk=payment["id"])


@pytest.mark.django_db
@pytest.mark.parametrize("v1", ["\u00e9", "\u00ff" * 64, "abc\x80", "g" * 64])
def test_a_signature_that_is_not_a_hex_digest_is_401(v1, mercadopago):
    response = post("data.id=ORD1&type=order", HTTP_X_SIGNATURE=f"ts=1,v1={v1}", HTTP_X_REQUEST_ID="r")
    assert (response.status_code, response.json()["code"]) == (401, "invalid_signature")


@transactional
def test_an_absurd_paid_amount_is_held_for_review_and_reconcile_carries_on(kiosk, menu, mercadopago, migration_data):
    orders = [place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json() for _ in range(2)]
    payments = [
        kiosk.post(f"/api/v1/orders/{o['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
        for o in orders
    ]
    mercadopago.pay(payments[0]["provider_order_id"], paid_amount="9999999999.99")  # more than our books hold
    mercadopago.pay(payments[1]["provider_order_id"])  # an ordinary one, whose notification is lost
    Payment.objects.update(updated_at=timezone.now() - datetime.timedelta(minutes=5))
    call_command("reconcile_payments")
    odd = Payment.objects.get(pk=payments[0]["id"])
    assert odd.needs_review and odd.paid_amount is None and odd.settles_id is None
    assert Order.objects.get(pk=orders[0]["id"]).status == "awaiting_payment"
    assert kiosk.get(f"/api/v1/orders/{orders[0]['id']}/payment/").json()["payment"]["status"] == "under_review"
    assert Order.objects.get(pk=orders[1]["id"]).status == "received"  # the next payment was not held up
    assert Client().get("/readyz").status_code == 200


@transactional
def test_unsigned_ipns_add_no_ledger_lines_are_throttled_and_purged(paid, mercadopago, settings):
    settings.MERCADOPAGO_WEBHOOK_INVALID_PER_MINUTE = 5
    events = PaymentEvent.objects.count()
    answers = [post(f"topic=payment&id={paid.provider_payment_reference}").status_code for _ in range(7)]
    assert answers == [200] * 5 + [429] * 2
    assert PaymentEvent.objects.count() == events
    assert WebhookDelivery.objects.filter(signature_valid__isnull=True).count() == 5
    WebhookDelivery.objects.update(received_at=timezone.now() - datetime.timedelta(days=30))
    call_command("purge_notifications")
    assert not WebhookDelivery.objects.filter(signature_valid__isnull=True).exists()
    assert WebhookDelivery.objects.filter(signature_valid=True).exists()  # the genuine one is kept


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"description": "\ud800"},
        {"taxes": [float("nan")]},
        {"discounts": {"a": float("inf")}},
        {"expiration_time": "PT" + "0" * 100 + "60S"},
    ],
)
def test_the_simulator_refuses_what_it_could_not_store(body):
    order = {**QR_ORDER, **body}
    raw = json.dumps(order, allow_nan=True).encode("utf-8", "surrogatepass")
    status, answer = dispatch("POST", "/v1/orders", headers=AUTH, body=raw)
    assert status == 400 and answer["errors"][0]["code"] in ("json_syntax_error", "property_value"), answer


@pytest.mark.django_db
def test_the_simulator_takes_an_absurd_token_as_the_default_user():
    token = f"APP_USR-{'1' * 100}-1-ab-{'2' * 100}"
    order = {**QR_ORDER, "external_reference": "kp-y"}
    status, _ = dispatch(
        "POST", "/v1/orders", headers={**AUTH, "Authorization": f"Bearer {token}"}, body=json.dumps(order)
    )
    assert status == 201


@transactional
@pytest.mark.parametrize("paid_amount", ["1E+15", "99999999999999999999", "10000000000.00"])
def test_the_simulate_hook_refuses_amounts_it_cannot_hold(paid, kiosk, menu, paid_amount):
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    mp_order = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"][
        "provider_order_id"
    ]
    response = Client().post(
        f"/mp-simulator/v1/orders/{mp_order}/simulate",
        {"outcome": "approved", "paid_amount": paid_amount},
        content_type="application/json",
    )
    assert (response.status_code, response.json()["errors"][0]["code"]) == (400, "property_value")


@transactional
@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "1e30", "0.015", "1.001"])
def test_refund_payment_refuses_amounts_that_are_not_cents(paid, manager_user, amount):
    with pytest.raises(CommandError):
        call_command("refund_payment", paid.pk, "--amount", amount, "--reason", "x", "--user", manager_user.username)
    assert not Refund.objects.exists()


@transactional
def test_refund_payment_refuses_an_overlong_reason(paid, manager_user):
    with pytest.raises(CommandError):
        call_command("refund_payment", paid.pk, "--reason", "x" * 501, "--user", manager_user.username)
    assert not Refund.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "command",
    [
        ["purge_notifications", "--days", "1000000"],
        ["purge_notifications", "--days", "-1"],
        ["reconcile_payments", "--limit", "-1"],
        ["reconcile_payments", "--limit", "99999999999999999999999"],
        ["process_notifications", "--limit", "x"],
    ],
)
def test_commands_refuse_out_of_range_arguments(command):
    with pytest.raises(CommandError):
        call_command(*command)
