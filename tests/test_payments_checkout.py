"""Checkout and taking QRs away, against the simulator through the real SDK, with Mercado Pago's timing:
notifications arrive only when the test delivers them, after our call has returned.

These tests run with real commits (transaction=True): our follow-up calls to Mercado Pago run after commit.
"""

import datetime
import re
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from orders.models import Order
from payments.gateway import CalledInsideTransaction, gateway
from payments.models import Payment, PaymentEvent
from tests.conftest import new_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _migration_data(migration_data):
    """Roles, permissions and the pickup counter, as the migrations made them."""


def checkout(client, order_id, key=None):
    return client.post(f"/api/v1/orders/{order_id}/checkout/", HTTP_IDEMPOTENCY_KEY=key or new_key())


def poll(client, order_id):
    return client.get(f"/api/v1/orders/{order_id}/payment/").json()


def expire_on_our_clock(payment_id):
    Payment.objects.filter(pk=payment_id).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))


# --- Checkout -------------------------------------------------------------------------------------


def test_checkout_creates_a_dynamic_qr_and_a_second_one_returns_it(kiosk, order, mercadopago):
    response = checkout(kiosk, order["id"])
    assert response.status_code == 201, response.json()
    payment = response.json()["payment"]
    assert payment["status"] == "pending"
    assert payment["amount"] == "61.70"
    assert payment["provider_order_id"].startswith("ORD")
    assert payment["qr_data"].endswith(f"/mp-simulator/pay/{payment['provider_order_id']}/")
    svg = ElementTree.fromstring(payment["qr_svg"])
    # A document that scales to the screen's frame: a viewBox and no fixed width or height.
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert re.fullmatch(r"0 0 (\d+) \1", svg.get("viewBox") or "")
    assert (svg.get("width"), svg.get("height")) == (None, None)

    again = checkout(kiosk, order["id"])
    assert again.status_code == 200
    assert again.json()["payment"]["id"] == payment["id"]
    assert Payment.objects.count() == 1
    assert list(PaymentEvent.objects.order_by("id").values_list("type", flat=True)) == ["created", "qr_created"]
    assert mercadopago.queued() == []  # creating a QR notifies nobody


def test_checkout_after_expiry_makes_a_new_qr_and_cancels_the_old_one_at_mercado_pago(kiosk, order, mercadopago):
    first = checkout(kiosk, order["id"]).json()["payment"]
    expire_on_our_clock(first["id"])
    second = checkout(kiosk, order["id"])
    assert second.status_code == 201
    assert second.json()["payment"]["id"] != first["id"]
    assert Payment.objects.get(pk=first["id"]).status == "expired"
    mercadopago.run_tasks()  # the worker cancels the QR at Mercado Pago
    assert gateway().get_order(first["provider_order_id"])["status"] == "canceled"


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


def test_a_mercado_pago_refusal_is_a_502_with_its_message(kiosk, order, mercadopago):
    mercadopago.faults = [400]
    response = checkout(kiosk, order["id"])
    assert (response.status_code, response.json()["code"]) == (502, "payment_provider_error")
    assert "simulated" in response.json()["detail"]


def test_polling_the_payment_is_cheap_and_says_how_the_order_stands(
    kiosk, order, mercadopago, django_assert_max_num_queries
):
    assert kiosk.get(f"/api/v1/orders/{order['id']}/payment/").json()["code"] == "no_payment"
    checkout(kiosk, order["id"])
    calls = len(mercadopago.calls)
    with django_assert_max_num_queries(7):
        body = poll(kiosk, order["id"])
    assert body["payment"]["status"] == "pending"
    assert body["order"] == {"id": order["id"], "number": order["number"], "status": "awaiting_payment"}
    assert len(mercadopago.calls) == calls  # polling did not call Mercado Pago


def test_the_order_cancelled_while_its_qr_is_made_gets_no_payable_qr(kiosk, order, mercadopago, monkeypatch):
    """The customer walks away (or staff cancel) while Mercado Pago is still answering the QR creation."""
    from payments.simulator.client import SimulatorHttpClient

    real = SimulatorHttpClient.request

    def slow_create(self, method, url, *args, **kwargs):
        answer = real(self, method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/v1/orders"):
            from payments.services.checkout import order_cancel_unpaid

            order_cancel_unpaid(order_id=order["id"])  # meanwhile, on another request
        return answer

    monkeypatch.setattr(SimulatorHttpClient, "request", slow_create)
    response = kiosk.post(
        f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key(), HTTP_ACCEPT_LANGUAGE="pt-br"
    )
    assert (response.status_code, response.json()["code"]) == (409, "order_not_payable")
    number = order["number"]
    assert response.json()["detail"] == (
        f"O pedido #{number} passou a 'Cancelado' enquanto o QR era gerado; o QR foi cancelado."
    )  # the kiosk's language, like every other refusal
    payment = Payment.objects.get()
    assert payment.status == "cancelled"
    mercadopago.run_tasks()  # the worker cancels the QR at Mercado Pago
    assert gateway().get_order(payment.provider_order_id)["status"] == "canceled"  # not payable at Mercado Pago
    assert poll(kiosk, order["id"])["payment"]["qr_data"] is None


def test_the_order_paid_at_the_counter_while_its_qr_is_made_gets_no_payable_qr(kiosk, order, mercadopago, monkeypatch):
    from payments.services.checkout import order_pay_at_counter
    from payments.simulator.client import SimulatorHttpClient

    real = SimulatorHttpClient.request

    def slow_create(self, method, url, *args, **kwargs):
        answer = real(self, method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/v1/orders"):
            order_pay_at_counter(order_id=order["id"], method="cash", amount=Decimal("61.70"), actor="cashier")
        return answer

    monkeypatch.setattr(SimulatorHttpClient, "request", slow_create)
    assert checkout(kiosk, order["id"]).status_code == 409
    payment = Payment.objects.get(provider="mercadopago")
    assert payment.status == "cancelled"
    mercadopago.run_tasks()  # the worker cancels the QR at Mercado Pago
    assert gateway().get_order(payment.provider_order_id)["status"] == "canceled"
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_a_notification_faster_than_the_checkout_answer_pays_the_order(kiosk, order, mercadopago, monkeypatch):
    """Mercado Pago can be faster than us: the payment lands while our create call is still returning."""
    from payments.simulator.client import SimulatorHttpClient

    real = SimulatorHttpClient.request

    def create_then_pay_at_once(self, method, url, *args, **kwargs):
        answer = real(self, method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/v1/orders"):
            mercadopago.pay(answer["response"]["id"])
            mercadopago.deliver()  # on another request, before our create call has returned
        return answer

    monkeypatch.setattr(SimulatorHttpClient, "request", create_then_pay_at_once)
    response = checkout(kiosk, order["id"])
    assert response.status_code == 201
    assert response.json()["payment"]["status"] == "approved"
    stored = Payment.objects.get()
    assert stored.qr_data and stored.provider_order_id
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_mercado_pago_is_never_called_inside_a_transaction(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    with pytest.raises(CalledInsideTransaction), transaction.atomic():
        gateway().get_order(payment["provider_order_id"])
    expire_on_our_clock(payment["id"])  # so that checkout must call Mercado Pago
    calls = len(mercadopago.calls)
    with pytest.raises(CalledInsideTransaction), transaction.atomic():
        kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key())
    assert len(mercadopago.calls) == calls
    assert Payment.objects.count() == 1  # and the transaction it was called in rolled back


def test_cancelling_inside_a_callers_transaction_calls_mercado_pago_after_the_commit(kiosk, order, mercadopago):
    from payments.services.checkout import order_cancel_unpaid

    payment = checkout(kiosk, order["id"]).json()["payment"]
    calls = len(mercadopago.calls)
    with transaction.atomic():
        order_cancel_unpaid(order_id=order["id"])
        assert len(mercadopago.calls) == calls  # not while the order row is locked
    assert len(mercadopago.calls) == calls  # nor in the caller's request: the worker does it
    mercadopago.run_tasks()
    assert len(mercadopago.calls) > calls
    assert gateway().get_order(payment["provider_order_id"])["status"] == "canceled"


def test_a_cancel_rolled_back_leaves_no_task_to_cancel_the_qr(kiosk, order, mercadopago):
    from payments.services.checkout import order_cancel_unpaid

    payment = checkout(kiosk, order["id"]).json()["payment"]
    with pytest.raises(RuntimeError), transaction.atomic():
        order_cancel_unpaid(order_id=order["id"])
        raise RuntimeError("the caller fails after the cancel")
    assert mercadopago.run_tasks() == 0  # the task vanished with the rollback
    assert gateway().get_order(payment["provider_order_id"])["status"] == "created"
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"


# --- Cancelling and stale orders ------------------------------------------------------------------


def test_cancelling_an_unpaid_order_cancels_its_qr_at_mercado_pago(kiosk, order, mercadopago):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    kiosk.post(f"/api/v1/orders/{order['id']}/cancel/")
    mercadopago.run_tasks()  # the worker cancels the QR at Mercado Pago
    stored = Payment.objects.get()
    assert (stored.status, stored.provider_status) == ("cancelled", "canceled")
    assert gateway().get_order(payment["provider_order_id"])["status"] == "canceled"
    assert mercadopago.queued()  # Mercado Pago will say so too, later
    mercadopago.deliver()
    assert Payment.objects.get().status == "cancelled"


def test_stale_orders_without_a_live_qr_are_cancelled_with_their_qr(kiosk, order, mercadopago, settings, menu):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - settings.ORDER_PAYMENT_TIMEOUT * 2)
    Payment.objects.filter(pk=payment["id"]).update(
        expires_at=timezone.now() - settings.MERCADOPAGO_QR_GRACE - datetime.timedelta(seconds=1)
    )
    call_command("cancel_stale_orders")
    call_command("cancel_stale_orders")
    mercadopago.run_tasks()  # the worker cancels the QR at Mercado Pago
    stored = Order.objects.get(pk=order["id"])
    assert (stored.status, stored.cancel_reason) == ("cancelled", "payment_expired")
    assert Payment.objects.get().provider_status == "canceled"
    menu["juice"].refresh_from_db()
    assert menu["juice"].stock == 3


def test_cancel_stale_orders_never_cuts_a_live_qr(kiosk, order, mercadopago, settings):
    """An old order whose customer asked for a new QR a minute ago is still being paid: leave it alone,
    also within the grace period after the QR's own expiry."""
    payment = checkout(kiosk, order["id"]).json()["payment"]
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - settings.ORDER_PAYMENT_TIMEOUT * 2)
    call_command("cancel_stale_orders")
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"
    expire_on_our_clock(payment["id"])  # just expired: within MERCADOPAGO_QR_GRACE
    call_command("cancel_stale_orders")
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"
    assert gateway().get_order(payment["provider_order_id"])["status"] == "created"

    mercadopago.pay(payment["provider_order_id"])  # and the customer does pay it
    mercadopago.deliver()
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_cancel_stale_orders_leaves_money_held_for_review_to_a_person(kiosk, order, mercadopago, settings):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], paid_amount="1.00")
    mercadopago.deliver()
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - settings.ORDER_PAYMENT_TIMEOUT * 2)
    Payment.objects.filter(pk=payment["id"]).update(expires_at=timezone.now() - datetime.timedelta(hours=1))
    call_command("cancel_stale_orders")
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"


def test_an_order_that_never_got_a_qr_is_stale_after_the_timeout(kiosk, order, settings):
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - settings.ORDER_PAYMENT_TIMEOUT * 2)
    call_command("cancel_stale_orders")
    assert Order.objects.get(pk=order["id"]).status == "cancelled"


def test_marking_paid_outside_mercado_pago_cancels_the_open_qr(kiosk, order, mercadopago, manager_user):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    admin = Client()
    admin.force_login(manager_user)
    admin.post("/admin/orders/order/counter-payment/", {"ids": order["id"], "method": "card_outside"})
    assert Order.objects.get(pk=order["id"]).status == "received"
    mercadopago.run_tasks()  # the worker cancels the QR at Mercado Pago
    stored = Payment.objects.get(provider="mercadopago")
    assert (stored.status, stored.provider_status) == ("cancelled", "canceled")
    assert gateway().get_order(payment["provider_order_id"])["status"] == "canceled"


# --- Money held for review -------------------------------------------------------------------------


def _superseded(kiosk, order, mercadopago):
    """Two QRs for the order: the first given up on our clock, whose cancel at Mercado Pago failed."""
    first = checkout(kiosk, order["id"]).json()["payment"]
    expire_on_our_clock(first["id"])
    mercadopago.faults = [None, "timeout", "timeout"]  # the new QR is made; cancelling the first fails
    second = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.run_tasks()
    return first, second


def test_a_wrong_amount_on_an_old_qr_takes_the_other_qr_away(kiosk, order, mercadopago):
    first, second = _superseded(kiosk, order, mercadopago)
    mercadopago.pay(first["provider_order_id"], paid_amount="1.00")
    mercadopago.deliver()
    polled = poll(kiosk, order["id"])
    assert (polled["payment"]["id"], polled["payment"]["status"]) == (first["id"], "under_review")
    assert polled["payment"]["qr_data"] is None
    assert Payment.objects.get(pk=second["id"]).status == "cancelled"
    assert gateway().get_order(second["provider_order_id"])["status"] == "canceled"


def test_checkout_refuses_when_money_arrived_for_review_while_its_qr_was_made(kiosk, order, mercadopago, monkeypatch):
    from payments.simulator.client import SimulatorHttpClient

    first = checkout(kiosk, order["id"]).json()["payment"]
    expire_on_our_clock(first["id"])
    real, done = SimulatorHttpClient.request, []

    def create_while_the_old_qr_is_paid_wrong(self, method, url, *args, **kwargs):
        answer = real(self, method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/v1/orders") and not done:
            done.append(1)
            mercadopago.pay(first["provider_order_id"], paid_amount="1.00")
            mercadopago.deliver()
        return answer

    monkeypatch.setattr(SimulatorHttpClient, "request", create_while_the_old_qr_is_paid_wrong)
    response = checkout(kiosk, order["id"])
    assert (response.status_code, response.json()["code"]) == (409, "payment_under_review")
    new = Payment.objects.exclude(pk=first["id"]).get()
    assert new.status == "cancelled"
    mercadopago.run_tasks()  # the worker cancels the QR at Mercado Pago
    assert gateway().get_order(new.provider_order_id)["status"] == "canceled"


@pytest.mark.parametrize("how", ["cancel", "paid at the counter"])
def test_an_order_holding_money_for_review_is_neither_cancelled_nor_paid_another_way(kiosk, order, mercadopago, how):
    from payments.services.checkout import PaymentUnderReview, order_pay_at_counter

    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], paid_amount="1.00")
    mercadopago.deliver()
    if how == "cancel":
        response = kiosk.post(f"/api/v1/orders/{order['id']}/cancel/")
        assert (response.status_code, response.json()["code"]) == (409, "payment_under_review")
    else:
        with pytest.raises(PaymentUnderReview):
            order_pay_at_counter(order_id=order["id"], method="cash", amount=Decimal("61.70"), actor="cashier")
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"
    assert Payment.objects.get().status == "approved"  # the money waits for a person: approve or refund


def test_cancel_stale_orders_asks_mercado_pago_first_and_keeps_an_order_paid_in_time(
    kiosk, order, mercadopago, settings
):
    """Paid before the QR ran out, but the notification is late (Mercado Pago re-sends every 15 minutes)."""
    payment = checkout(kiosk, order["id"]).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - settings.ORDER_PAYMENT_TIMEOUT * 2)
    Payment.objects.filter(pk=payment["id"]).update(
        expires_at=timezone.now() - settings.MERCADOPAGO_QR_GRACE - datetime.timedelta(seconds=1)
    )
    call_command("cancel_stale_orders")
    mercadopago.deliver()
    assert Order.objects.get(pk=order["id"]).status == "received"
    assert not Payment.objects.get().refunds.exists()


def test_cancel_stale_orders_waits_when_mercado_pago_cannot_say(kiosk, order, mercadopago, settings):
    payment = checkout(kiosk, order["id"]).json()["payment"]
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - settings.ORDER_PAYMENT_TIMEOUT * 2)
    Payment.objects.filter(pk=payment["id"]).update(expires_at=timezone.now() - datetime.timedelta(hours=1))
    mercadopago.faults = ["timeout", "timeout"]
    call_command("cancel_stale_orders")
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"
    call_command("cancel_stale_orders")
    assert Order.objects.get(pk=order["id"]).status == "cancelled"


def test_reconcile_rereads_a_given_up_qr_mercado_pago_last_called_processing(kiosk, order, mercadopago):
    first, _ = _superseded(kiosk, order, mercadopago)
    Payment.objects.filter(pk=first["id"]).update(provider_status="processing")
    mercadopago.pay(first["provider_order_id"])  # its notification is lost
    Payment.objects.update(updated_at=timezone.now() - datetime.timedelta(minutes=5))
    call_command("reconcile_payments")
    assert Payment.objects.get(pk=first["id"]).status == "approved"
    assert Order.objects.get(pk=order["id"]).status == "received"
