"""Checkout, notifications and the money checks, against the simulator through the real SDK.

These tests run with real commits (transaction=True) because that is how Mercado Pago's side behaves:
notifications go out after its database commits, and our automatic refunds run after ours.
"""

import datetime
import json
import time
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from orders.models import Order
from payments import services
from payments.models import Payment, PaymentEvent, Refund, WebhookDelivery
from payments.simulator import notify
from tests.conftest import new_key, place

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _migration_data(migration_data):
    """Roles, permissions and the pickup counter, as the migrations made them."""


@pytest.fixture
def order(kiosk, menu):
    body = place(
        kiosk, [{"product_id": menu["burger"].pk, "quantity": 2}, {"product_id": menu["juice"].pk, "quantity": 1}]
    )
    assert body.status_code == 201
    return body.json()


def checkout(client, order_id, key=None):
    return client.post(f"/api/v1/orders/{order_id}/checkout/", HTTP_IDEMPOTENCY_KEY=key or new_key())


def status_changes(payment) -> list[tuple[str, str]]:
    return list(
        PaymentEvent.objects.filter(payment=payment, type=PaymentEvent.Type.STATUS_CHANGED)
        .order_by("id")
        .values_list("from_status", "to_status")
    )


def signed_post(*, data_id, body, topic="order", ts=None, request_id=None, secret=None, signature=None):
    from django.conf import settings

    request_id = request_id or str(uuid.uuid4())
    ts = ts or str(int(time.time() * 1000))
    v1 = notify.sign(
        data_id=data_id, request_id=request_id, ts=ts, secret=secret or settings.MERCADOPAGO_WEBHOOK_SECRET
    )
    headers = {
        "HTTP_X_REQUEST_ID": request_id,
        "HTTP_X_SIGNATURE": signature if signature is not None else f"ts={ts},v1={v1}",
    }
    return Client().post(
        f"/api/v1/webhooks/mercadopago/?data.id={data_id}&type={topic}",
        json.dumps(body),
        content_type="application/json",
        **headers,
    )


# --- Checkout -------------------------------------------------------------------------------------


def test_checkout_creates_a_dynamic_qr_and_a_second_one_returns_it(kiosk, order, mercadopago):
    response = checkout(kiosk, order["id"])
    assert response.status_code == 201, response.json()
    payment = response.json()["payment"]
    assert payment["status"] == "pending"
    assert payment["amount"] == "61.70"
    assert payment["provider_order_id"].startswith("ORD")
    assert payment["qr_data"].endswith(f"/mp-simulator/pay/{payment['provider_order_id']}/")
    assert payment["qr_svg"].lstrip().startswith("<svg")
    assert payment["expires_at"]

    again = checkout(kiosk, order["id"])
    assert again.status_code == 200
    assert again.json()["payment"]["id"] == payment["id"]
    assert Payment.objects.count() == 1
    events = list(PaymentEvent.objects.order_by("id").values_list("type", flat=True))
    assert events == ["created", "qr_created"]


def test_checkout_after_expiry_makes_a_new_qr(kiosk, order, mercadopago):
    first = checkout(kiosk, order["id"]).json()["payment"]
    Payment.objects.filter(pk=first["id"]).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    second = checkout(kiosk, order["id"])
    assert second.status_code == 201
    assert second.json()["payment"]["id"] != first["id"]
    assert Payment.objects.get(pk=first["id"]).status == "expired"


def test_checkout_needs_an_unpaid_order_and_an_idempotency_key(kiosk, order, mercadopago):
    assert kiosk.post(f"/api/v1/orders/{order['id']}/checkout/").json()["code"] == "idempotency_key_invalid"
    kiosk.post(f"/api/v1/orders/{order['id']}/cancel/")
    response = checkout(kiosk, order["id"])
    assert (response.status_code, response.json()["code"]) == (409, "order_not_payable")
    assert not Payment.objects.exists()


def test_mercado_pago_timeouts_give_503_and_the_retry_reuses_the_same_qr_request(kiosk, order, mercadopago):
    mercadopago.faults = ["timeout", "timeout"]
    response = checkout(kiosk, order["id"])
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "payment_provider_unavailable"
    assert int(response["Retry-After"]) >= 1
    payment = Payment.objects.get()
    assert payment.status == "pending" and not payment.qr_data and "Timeout" in payment.last_error
    assert PaymentEvent.objects.filter(payment=payment, type="qr_failed").exists()

    retry = checkout(kiosk, order["id"])
    assert retry.status_code == 201
    assert retry.json()["payment"]["id"] == payment.pk  # same payment, same reference: never two QR orders
    assert Payment.objects.count() == 1


def test_mercado_pago_5xx_is_retried_before_giving_up(kiosk, order, mercadopago):
    mercadopago.faults = [500, 502]
    assert checkout(kiosk, order["id"]).status_code == 503
    assert len(mercadopago.calls) == 2  # one try + MERCADOPAGO_MAX_RETRIES
    mercadopago.faults = [500]
    assert checkout(kiosk, order["id"]).status_code == 201


def test_circuit_breaker_stops_calling_a_dead_mercado_pago(kiosk, order, mercadopago, settings):
    settings.MERCADOPAGO_BREAKER_THRESHOLD = 2
    settings.MERCADOPAGO_MAX_RETRIES = 0
    mercadopago.faults = [503, 503, 503]
    checkout(kiosk, order["id"])
    checkout(kiosk, order["id"])
    calls = len(mercadopago.calls)
    response = checkout(kiosk, order["id"])
    assert response.status_code == 503
    assert len(mercadopago.calls) == calls  # the breaker answered, Mercado Pago was not called
    assert int(response["Retry-After"]) > 1


def test_a_mercado_pago_refusal_is_a_502_with_its_message(kiosk, order, mercadopago, terminal):
    mercadopago.faults = [400]
    response = checkout(kiosk, order["id"])
    assert (response.status_code, response.json()["code"]) == (502, "payment_provider_error")
    assert "simulated" in response.json()["detail"]


def test_polling_the_payment_is_cheap(kiosk, order, mercadopago, django_assert_max_num_queries):
    assert kiosk.get(f"/api/v1/orders/{order['id']}/payment/").json()["code"] == "no_payment"
    checkout(kiosk, order["id"])
    with django_assert_max_num_queries(6):
        response = kiosk.get(f"/api/v1/orders/{order['id']}/payment/")
    assert response.json()["payment"]["status"] == "pending"
    assert mercadopago.calls[-1][0] == "POST"  # polling did not call Mercado Pago


# --- Notifications --------------------------------------------------------------------------------


def test_paying_sends_the_order_to_the_kitchen(kiosk, kitchen, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])

    assert [r.status_code for r in mercadopago.deliveries] == [200]
    polled = kiosk.get(f"/api/v1/orders/{order['id']}/payment/").json()["payment"]
    assert (polled["status"], polled["paid_amount"]) == ("approved", "61.70")
    assert polled["paid_at"]
    assert Order.objects.get(pk=order["id"]).status == "received"
    assert [o["id"] for o in kitchen.get("/api/v1/kitchen/orders/").json()] == [order["id"]]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.signature_valid, delivery.topic) == ("processed", True, "order")
    events = list(PaymentEvent.objects.order_by("id").values_list("type", flat=True))
    assert events == ["created", "qr_created", "status_changed", "notification_received"]
    noted = PaymentEvent.objects.get(type="notification_received")
    assert noted.payload["action"] == "order.processed" and noted.actor == "mercadopago"


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_signature_in_seconds_or_milliseconds(kiosk, order, mercadopago, unit):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], signature_ts=unit)
    assert Payment.objects.get().status == "approved"


def test_duplicates_change_the_status_once(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], duplicates=4)
    assert [r.status_code for r in mercadopago.deliveries] == [200] * 5
    assert status_changes(Payment.objects.get()) == [("pending", "approved")]
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_forged_and_unsigned_notifications_are_401_and_change_nothing(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)  # paid at Mercado Pago, not told yet
    body = {"action": "order.processed", "type": "order", "data": {"id": payment["provider_order_id"]}}

    forged = signed_post(data_id=payment["provider_order_id"], body=body, secret="not-the-secret")
    unsigned = signed_post(data_id=payment["provider_order_id"], body=body, signature="")
    garbage = signed_post(data_id=payment["provider_order_id"], body=body, signature="ts=1,v1=zz")
    for response in (forged, unsigned, garbage):
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_signature"
    assert Payment.objects.get().status == "pending"
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"
    assert list(WebhookDelivery.objects.values_list("status", flat=True)) == ["rejected"] * 3

    # The genuine one still gets through afterwards (forgeries did not take its place in the inbox).
    assert signed_post(data_id=payment["provider_order_id"], body=body).status_code == 200
    assert Payment.objects.get().status == "approved"


@pytest.mark.parametrize("data_id", ["ORD01AAAAAAAAAAAAAAAAAAAAAAA", "ORD-bogus", "12345"])
def test_notification_for_an_order_we_do_not_know_is_acknowledged(mercadopago, db, data_id):
    response = signed_post(data_id=data_id, body={"type": "order"})
    assert response.status_code == 200
    assert WebhookDelivery.objects.get().status == "ignored"


def test_amount_mismatch_is_flagged_and_never_reaches_the_kitchen(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], paid_amount="61.69")
    stored = Payment.objects.get()
    assert stored.status == "approved" and stored.needs_review
    assert "61.69" in stored.review_reason
    assert stored.settles_id is None
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"
    again = checkout(kiosk, order["id"])  # the kiosk must not take the customer's money a second time
    assert (again.status_code, again.json()["code"]) == (409, "payment_under_review")


def test_payment_after_the_order_was_cancelled_is_refunded_and_flagged(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.faults = ["timeout", "timeout"]  # the QR cancel at Mercado Pago does not get through
    assert kiosk.post(f"/api/v1/orders/{order['id']}/cancel/").status_code == 200
    mercadopago.pay(payment["provider_order_id"])  # ...and the customer pays it anyway

    stored = Payment.objects.get()
    assert stored.needs_review and "refunding automatically" in stored.review_reason
    assert stored.status == "refunded"
    refund = Refund.objects.get()
    assert (refund.status, refund.amount, refund.requested_by) == ("succeeded", Decimal("61.70"), "system")
    assert stored.refunded_amount() == Decimal("61.70")
    assert Order.objects.get(pk=order["id"]).status == "cancelled"


def test_a_second_payment_for_a_paid_order_is_flagged(kiosk, order, mercadopago):
    first = checkout(kiosk, order["id"]).json()["payment"]
    Payment.objects.filter(pk=first["id"]).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    mercadopago.faults = ["timeout", "timeout"]  # cancelling the old QR fails (both tries); the new one is made
    second = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(second["provider_order_id"])
    assert Order.objects.get(pk=order["id"]).status == "received"

    # The first QR is paid too: money taken twice for one order. A person decides what to do.
    Payment.objects.filter(pk=first["id"]).update(status="pending")  # as if our expiry had not happened
    mercadopago.pay(first["provider_order_id"])
    late = Payment.objects.get(pk=first["id"])
    assert late.needs_review and "Second payment" in late.review_reason
    assert str(Payment.objects.get(pk=second["id"]).settles_id) == order["id"]


def test_mercado_pago_down_while_processing_keeps_the_notification_for_later(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.faults = ["timeout"]
    mercadopago.pay(payment["provider_order_id"])
    assert [r.status_code for r in mercadopago.deliveries] == [200]  # stored: answered fast, no 5xx
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and "Timeout" in delivery.last_error
    assert Payment.objects.get().status == "pending"

    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    call_command("process_notifications")
    assert WebhookDelivery.objects.get().status == "processed"
    assert Payment.objects.get().status == "approved"
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_a_notification_arriving_before_checkout_stored_its_answer(kiosk, order, mercadopago, monkeypatch):
    """Mercado Pago can be faster than us: the payment lands while our create call is still returning."""
    from payments.simulator.client import SimulatorHttpClient

    patched = SimulatorHttpClient.request

    def create_then_pay_at_once(self, method, url, *args, **kwargs):
        answer = patched(self, method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/v1/orders"):
            mercadopago.pay(answer["response"]["id"])  # notification delivered before we record the answer
        return answer

    monkeypatch.setattr(SimulatorHttpClient, "request", create_then_pay_at_once)
    response = checkout(kiosk, order["id"])
    assert response.status_code == 201
    stored = Payment.objects.get()
    assert stored.status == "approved"
    assert stored.qr_data and stored.provider_order_id
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_an_older_state_arriving_after_a_newer_one_changes_nothing(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    created_snapshot = services.gateway().get_order(payment["provider_order_id"])
    mercadopago.pay(payment["provider_order_id"])
    services.payment_apply_provider_order(mp_order=created_snapshot, source="late report")
    stored = Payment.objects.get()
    assert stored.status == "approved"
    assert status_changes(stored) == [("pending", "approved")]


def test_legacy_ipn_is_stored_and_only_triggers_a_fetch(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    response = Client().post("/api/v1/webhooks/mercadopago/?topic=merchant_order&id=123", "", content_type="")
    assert response.status_code == 200
    assert WebhookDelivery.objects.get().status == "ignored"
    assert Payment.objects.get(pk=payment["id"]).status == "pending"


def test_reconcile_catches_a_notification_that_never_came(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)
    Payment.objects.update(updated_at=timezone.now() - datetime.timedelta(minutes=5))
    call_command("reconcile_payments")
    assert Payment.objects.get().status == "approved"
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_cancelling_an_unpaid_order_cancels_its_qr_at_mercado_pago(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    kiosk.post(f"/api/v1/orders/{order['id']}/cancel/")
    stored = Payment.objects.get()
    assert stored.status == "cancelled"
    assert stored.provider_status == "canceled"
    mp_order = services.gateway().get_order(payment["provider_order_id"])
    assert mp_order["status"] == "canceled"


def test_stale_unpaid_orders_are_cancelled_with_their_qr(kiosk, order, mercadopago, settings, menu):
    checkout(kiosk, order["id"])
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - settings.ORDER_PAYMENT_TIMEOUT * 2)
    call_command("cancel_stale_orders")
    call_command("cancel_stale_orders")
    stored = Order.objects.get(pk=order["id"])
    assert (stored.status, stored.cancel_reason) == ("cancelled", "payment_expired")
    assert Payment.objects.get().provider_status == "canceled"
    menu["juice"].refresh_from_db()
    assert menu["juice"].stock == 3


def test_marking_paid_outside_mercado_pago_cancels_the_open_qr(kiosk, order, mercadopago, manager_user):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    admin = Client()
    admin.force_login(manager_user)
    admin.post("/admin/orders/order/", {"action": "mark_paid", "_selected_action": [order["id"]]})
    assert Order.objects.get(pk=order["id"]).status == "received"
    stored = Payment.objects.get()
    assert (stored.status, stored.provider_status) == ("cancelled", "canceled")
    assert services.gateway().get_order(payment["provider_order_id"])["status"] == "canceled"


def test_a_late_payment_says_what_it_was_before(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.faults = ["timeout", "timeout"]
    kiosk.post(f"/api/v1/orders/{order['id']}/cancel/")
    mercadopago.pay(payment["provider_order_id"])
    assert "(payment cancelled, order cancelled)" in Payment.objects.get().review_reason


def test_a_signed_notification_with_an_unreadable_ts_is_401_and_never_retried(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)
    body = {"type": "order"}
    for ts in ("\u00b2", "9" * 5000):
        response = signed_post(data_id=payment["provider_order_id"], body=body, ts=ts)
        assert (response.status_code, response.json()["code"]) == (401, "invalid_signature")
    WebhookDelivery.objects.update(status="pending", signature_valid=None, next_attempt_at=None)
    WebhookDelivery.objects.update(received_at=timezone.now() - datetime.timedelta(minutes=5))
    call_command("process_notifications")
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"rejected"}
    assert Payment.objects.get().status == "pending"
