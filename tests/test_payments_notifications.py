"""Notifications and the money rules: what Mercado Pago says is applied, honestly reported to the kiosk.

Mercado Pago's timing: a notification arrives only when the test delivers it (`mercadopago.deliver()`),
after the call that caused it has returned.
"""

import datetime
import json
import time
import uuid
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from orders.models import Order
from payments.gateway import gateway
from payments.models import Payment, PaymentEvent, Refund, WebhookDelivery
from payments.services.apply import payment_apply_provider_order
from payments.webhooks import signature_manifest
from tests.conftest import new_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _migration_data(migration_data):
    """Roles, permissions and the pickup counter, as the migrations made them."""


def checkout(client, order_id):
    response = client.post(f"/api/v1/orders/{order_id}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key())
    assert response.status_code in (200, 201), response.json()
    return response.json()["payment"]


def poll(client, order_id):
    return client.get(f"/api/v1/orders/{order_id}/payment/").json()


def status_changes(payment) -> list[tuple[str, str]]:
    return list(
        PaymentEvent.objects.filter(payment=payment, type=PaymentEvent.Type.STATUS_CHANGED)
        .exclude(to_status="")
        .order_by("id")
        .values_list("from_status", "to_status")
    )


def signed_post(*, data_id, body, topic="order", request_id=None):
    """A notification signed as Mercado Pago's SDKs sign (data.id as received)."""
    import hashlib
    import hmac

    request_id = request_id or str(uuid.uuid4())
    ts = str(int(time.time()))
    manifest = signature_manifest(data_id=data_id, request_id=request_id, ts=ts)
    v1 = hmac.new(settings.MERCADOPAGO_WEBHOOK_SECRET.encode(), manifest.encode(), hashlib.sha256).hexdigest()
    return Client().post(
        f"/api/v1/webhooks/mercadopago/?data.id={data_id}&type={topic}",
        json.dumps(body),
        content_type="application/json",
        HTTP_X_REQUEST_ID=request_id,
        HTTP_X_SIGNATURE=f"ts={ts},v1={v1}",
    )


def expire_on_our_clock(payment_id):
    Payment.objects.filter(pk=payment_id).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))


# --- Paying ---------------------------------------------------------------------------------------


def test_paying_sends_the_order_to_the_kitchen_once_the_notification_arrives(kiosk, kitchen, order, mercadopago):
    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"])
    assert poll(kiosk, order["id"])["payment"]["status"] == "pending"  # paid, but nobody told us yet

    assert [r.status_code for r in mercadopago.deliver()] == [200]
    polled = poll(kiosk, order["id"])
    assert (polled["payment"]["status"], polled["payment"]["paid_amount"]) == ("approved", "61.70")
    assert polled["order"]["status"] == "received"
    assert [o["id"] for o in kitchen.get("/api/v1/kitchen/orders/").json()] == [order["id"]]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.signature_valid, delivery.topic) == ("processed", True, "order")
    assert delivery.signature_id_case == "as_received"  # the simulator signs as the SDKs do
    events = list(PaymentEvent.objects.order_by("id").values_list("type", flat=True))
    assert events == ["created", "qr_created", "status_changed", "notification_received"]


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_signature_in_seconds_or_milliseconds(kiosk, order, mercadopago, unit):
    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"], signature_ts=unit)
    mercadopago.deliver()
    assert Payment.objects.get().status == "approved"


def test_duplicates_change_the_status_once(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"], duplicates=4)
    assert [r.status_code for r in mercadopago.deliver()] == [200] * 5
    assert status_changes(Payment.objects.get()) == [("pending", "approved")]
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_an_older_state_arriving_after_a_newer_one_changes_nothing(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"])
    created_snapshot = gateway().get_order(payment["provider_order_id"])
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.deliver()
    payment_apply_provider_order(mp_order=created_snapshot, source="late report")
    assert status_changes(Payment.objects.get()) == [("pending", "approved")]


def test_mercado_pago_down_while_processing_keeps_the_notification_for_later(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.faults = ["timeout", "timeout"]  # the worker's first try and its one quick retry
    assert [r.status_code for r in mercadopago.deliver()] == [200]  # stored: answered fast, no 5xx
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and "Timeout" in delivery.last_error
    assert Payment.objects.get().status == "pending"

    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    call_command("process_notifications")
    assert WebhookDelivery.objects.get().status == "processed"
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_reconcile_catches_a_notification_that_never_came(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"])  # its notification is lost: never delivered
    Payment.objects.update(updated_at=timezone.now() - datetime.timedelta(minutes=5))
    call_command("reconcile_payments")
    assert Payment.objects.get().status == "approved"
    assert Order.objects.get(pk=order["id"]).status == "received"


# --- Money that does not pay the order ------------------------------------------------------------


def test_a_wrong_amount_is_under_review_for_the_kiosk_never_approved(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"], paid_amount="61.69")
    mercadopago.deliver()
    stored = Payment.objects.get()
    assert stored.status == "approved" and stored.needs_review and "61.69" in stored.review_reason
    assert stored.settles_id is None
    polled = poll(kiosk, order["id"])
    assert polled["payment"]["status"] == "under_review"
    assert polled["order"]["status"] == "awaiting_payment"
    again = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key())
    assert (again.status_code, again.json()["code"]) == (409, "payment_under_review")
    assert not Refund.objects.exists()  # held for a person, not refunded automatically


def test_a_superseded_qr_that_gets_paid_pays_the_order_and_the_other_qr_is_cancelled(kiosk, order, mercadopago):
    """Our clock gave the first QR up (a new one was made), but the cancel at Mercado Pago did not get
    through and the customer paid the first one: that money pays the order."""
    first = checkout(kiosk, order["id"])
    expire_on_our_clock(first["id"])
    mercadopago.faults = [None, "timeout", "timeout"]  # the new QR is made; cancelling the first fails (both tries)
    second = checkout(kiosk, order["id"])
    assert Payment.objects.get(pk=first["id"]).status == "expired"

    mercadopago.pay(first["provider_order_id"])
    mercadopago.deliver()
    paid = Payment.objects.get(pk=first["id"])
    assert (paid.status, str(paid.settles_id), paid.needs_review) == ("approved", order["id"], False)
    assert Order.objects.get(pk=order["id"]).status == "received"
    assert Payment.objects.get(pk=second["id"]).status == "cancelled"
    assert gateway().get_order(second["provider_order_id"])["status"] == "canceled"
    assert not Refund.objects.exists()
    polled = poll(kiosk, order["id"])
    assert (polled["payment"]["id"], polled["payment"]["status"]) == (first["id"], "approved")


def test_a_second_payment_for_a_paid_order_is_refunded_automatically_and_flagged(kiosk, order, mercadopago):
    first = checkout(kiosk, order["id"])
    expire_on_our_clock(first["id"])
    mercadopago.faults = [None, "timeout", "timeout"]
    second = checkout(kiosk, order["id"])
    mercadopago.pay(second["provider_order_id"])
    mercadopago.pay(first["provider_order_id"])  # both QRs paid: money taken twice for one order
    mercadopago.deliver()

    settled = Payment.objects.get(settles_id=order["id"])
    extra = Payment.objects.exclude(pk=settled.pk).get()
    assert extra.needs_review and "Segundo pagamento" in extra.review_reason  # written in pt-BR
    refund = Refund.objects.get()
    assert (refund.payment_id, refund.amount, refund.status, refund.requested_by) == (
        extra.pk,
        Decimal("61.70"),
        "pending",
        "system",
    )
    assert extra.status == "approved"  # the refund is not confirmed yet
    mercadopago.settle()
    extra.refresh_from_db()
    assert extra.status == "refunded"
    assert Order.objects.get(pk=order["id"]).status == "received"  # the food is still coming
    assert poll(kiosk, order["id"])["payment"]["status"] == "approved"  # the kiosk follows the paying one


def test_money_for_a_cancelled_order_is_refunded_automatically(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"])  # paid; its notification is on its way...
    assert kiosk.post(f"/api/v1/orders/{order['id']}/cancel/").status_code == 200  # ...when the kiosk gives up
    assert not Refund.objects.exists()  # the kiosk's request did not wait on Mercado Pago...
    mercadopago.run_tasks()  # ...the worker cancels the QR, finds it paid, and refunds it
    stored = Payment.objects.get()
    assert stored.needs_review and "(pagamento cancelado)" in stored.review_reason  # the cancel found it paid
    refund = Refund.objects.get()
    assert (refund.status, refund.amount) == ("pending", Decimal("61.70"))
    assert poll(kiosk, order["id"])["payment"]["status"] == "under_review"

    mercadopago.settle()  # Mercado Pago confirms the refund, and its notifications arrive late
    stored.refresh_from_db()
    assert stored.status == "refunded" and stored.refunded_amount() == Decimal("61.70")
    assert Order.objects.get(pk=order["id"]).status == "cancelled"
    assert Refund.objects.count() == 1  # late notifications refund nothing twice


def test_money_for_an_order_paid_at_the_counter_is_refunded_automatically(kiosk, order, mercadopago):
    from payments.services.checkout import order_pay_at_counter

    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.faults = ["timeout", "timeout"]  # the QR cancel does not get through
    order_pay_at_counter(order_id=order["id"], method="cash", amount=Decimal("61.70"), actor="cashier")
    mercadopago.deliver()
    stored = Payment.objects.get(provider="mercadopago")
    assert stored.needs_review and "já pago com dinheiro no caixa" in stored.review_reason
    assert Refund.objects.get().amount == Decimal("61.70")
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_a_refunded_payment_never_blocks_a_new_checkout(kiosk, order, mercadopago, manager):
    from payments.services.refunds import refund_request

    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"], paid_amount="1.00")
    mercadopago.deliver()
    refund_request(payment_id=payment["id"], amount=None, reason="wrong amount", actor="boss")
    again = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key())
    assert again.json()["code"] == "payment_under_review"  # the refund is not confirmed: money still held
    mercadopago.settle()
    assert Payment.objects.get(pk=payment["id"]).status == "refunded"
    again = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key())
    assert again.status_code == 201, again.json()


# --- Chargebacks ----------------------------------------------------------------------------------


def test_a_chargeback_is_its_own_status_and_goes_to_review_never_refunded(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"])
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.deliver()
    mercadopago.pay(payment["provider_order_id"], "charged_back")
    mercadopago.deliver()
    stored = Payment.objects.get()
    assert stored.status == "charged_back"
    assert stored.needs_review and "Chargeback" in stored.review_reason
    assert stored.refunded_amount() == Decimal("0.00")
    assert not Refund.objects.exists()
    assert [change for change in status_changes(stored) if change[1] == "charged_back"] == [
        ("approved", "charged_back")
    ]
    assert PaymentEvent.objects.filter(payment=stored, type="chargeback").count() == 1  # two reports, one fact
    assert poll(kiosk, order["id"])["payment"]["status"] == "charged_back"
