"""The cashier: money taken at the counter (cash, or a card machine outside Mercado Pago) for a kiosk order not
paid at the kiosk, through the API and the admin; who may do it; what the ledger, the events, the kiosk and the
sales report then show."""

from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from kiosk.events.models import Event
from orders.models import Order
from payments import reports
from payments.gateway import gateway
from payments.models import Payment, PaymentEvent, Refund
from tests.conftest import client_for, make_user, new_key, place, staff_of, store_named

pytestmark = pytest.mark.django_db
URL = "/api/v1/orders/{}/counter-payment/"


@pytest.fixture
def cashier_user(terminal):
    """cashier1 of "Loja 1", the store of the `terminal` fixture (and of the `order` fixture)."""
    return staff_of(make_user("cashier1", "cashier", is_staff=True), terminal.store)


@pytest.fixture
def cashier(cashier_user):
    return client_for(cashier_user)


def pay(client, order_id, method="cash", amount="61.70", key=None):
    body = {"method": method, "amount": amount}
    return client.post(URL.format(order_id), body, format="json", HTTP_IDEMPOTENCY_KEY=key or new_key())


def test_the_cashier_finds_the_kiosk_order_by_number_and_takes_cash(cashier, kiosk, kitchen, order):
    found = cashier.get("/api/v1/orders/", {"number": order["number"]}).json()["results"]
    assert [(o["id"], o["status"], o["total"]) for o in found] == [(order["id"], "awaiting_payment", "61.70")]
    assert found[0]["customer"] is None  # (a CPF, if any, would be masked as everywhere)

    response = pay(cashier, order["id"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["order"]["status"] == "received" and body["order"]["number"] == order["number"]
    assert (body["payment"]["status"], body["payment"]["method"], body["payment"]["paid_amount"]) == (
        "approved",
        "cash",
        "61.70",
    )
    # The kitchen gets it as when Mercado Pago pays; the kiosk polling it sees it paid.
    assert [o["id"] for o in kitchen.get("/api/v1/kitchen/orders/").json()] == [order["id"]]
    polled = kiosk.get(f"/api/v1/orders/{order['id']}/payment/").json()
    assert (polled["payment"]["status"], polled["payment"]["method"], polled["order"]["status"]) == (
        "approved",
        "cash",
        "received",
    )


def test_the_ledger_and_the_events_record_method_amount_and_who(cashier, order):
    pay(cashier, order["id"], method="card_outside")
    payment = Payment.objects.get()
    assert (payment.provider, payment.method, payment.amount, payment.paid_amount) == (
        "counter",
        "card_outside",
        Decimal("61.70"),
        Decimal("61.70"),
    )
    assert payment.settles_id == payment.order_id and payment.provider_order_id is None
    lines = list(
        PaymentEvent.objects.filter(payment=payment).order_by("id").values("type", "amount", "actor", "to_status")
    )
    assert lines == [
        {"type": "counter_payment", "amount": Decimal("61.70"), "actor": "cashier1", "to_status": ""},
        {"type": "status_changed", "amount": None, "actor": "cashier1", "to_status": "approved"},
    ]
    assert PaymentEvent.objects.get(type="counter_payment").payload == {"method": "card_outside", "amount": "61.70"}
    paid = Event.objects.get(order_id=order["id"], type="order.paid").data
    assert paid["payment"]["method"] == "card_outside" and paid["payment"]["amount"] == "61.70"
    assert paid["payment"]["mercadopago"] == {"order_id": None, "payment_id": None}
    approved = Event.objects.get(order_id=order["id"], type="payment.approved").data
    assert approved["method"] == "card_outside"


def test_a_retry_with_the_same_key_answers_the_same_and_records_nothing_more(cashier, order):
    first = pay(cashier, order["id"], key="counter-1")
    again = pay(cashier, order["id"], key="counter-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Payment.objects.count() == 1
    assert Event.objects.filter(order_id=order["id"], type="order.paid").count() == 1
    other_body = pay(cashier, order["id"], method="card_outside", key="counter-1")
    assert (other_body.status_code, other_body.json()["code"]) == (422, "idempotency_key_reused")
    new_key_again = pay(cashier, order["id"])  # a second payment for the same order: refused
    assert (new_key_again.status_code, new_key_again.json()["code"]) == (409, "order_not_payable")
    assert new_key_again.json()["current"] == "received"
    assert Payment.objects.count() == 1


def test_the_idempotency_key_is_required(cashier, order):
    response = cashier.post(URL.format(order["id"]), {"method": "cash", "amount": "61.70"}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "idempotency_key_invalid")
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"


def test_another_amount_than_the_total_is_refused_and_changes_nothing(cashier, order):
    for amount in ("61.69", "61.71", "100.00"):
        response = pay(cashier, order["id"], amount=amount)
        assert response.status_code == 422
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "counter_amount_mismatch"
        assert (response.json()["order_total"], response.json()["amount"]) == ("61.70", amount)
    assert pay(cashier, order["id"], amount="61.7").status_code == 201  # the same money, written shorter


@pytest.mark.parametrize(
    "body",
    [
        {"method": "pix", "amount": "61.70"},
        {"method": "mercadopago_qr", "amount": "61.70"},
        {"amount": "61.70"},
        {"method": "cash"},
        {"method": "cash", "amount": 61.7},
        {"method": "cash", "amount": "61,70"},
        {"method": "cash", "amount": "-61.70"},
        {"method": "cash", "amount": "61.70", "change": "38.30"},
        {"method": ["cash"], "amount": "61.70"},
    ],
)
def test_bad_bodies_are_400_and_change_nothing(cashier, order, body):
    response = cashier.post(URL.format(order["id"]), body, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert not Payment.objects.exists()
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"


def test_a_cancelled_order_cannot_be_paid_at_the_counter(cashier, kiosk, order):
    kiosk.post(f"/api/v1/orders/{order['id']}/cancel/")
    response = pay(cashier, order["id"])
    assert (response.status_code, response.json()["code"], response.json()["current"]) == (
        409,
        "order_not_payable",
        "cancelled",
    )
    assert not Payment.objects.exists()


# --- Who may ----------------------------------------------------------------------------------------


def test_only_cashiers_and_managers_take_money_at_the_counter(kiosk, kitchen, order):
    for client in (kiosk, kitchen, client_for(None)):
        response = pay(client, order["id"])
        assert response.status_code in (401, 403)
    assert not Payment.objects.exists()
    assert pay(client_for(make_user("boss", "manager")), order["id"]).status_code == 201


def test_a_cashier_of_another_store_does_not_find_the_order(order):
    elsewhere = client_for(staff_of(make_user("caixa-2", "cashier"), store_named("Loja 2")))
    response = pay(elsewhere, order["id"])
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert elsewhere.get("/api/v1/orders/", {"number": order["number"]}).json()["results"] == []
    lost = client_for(make_user("caixa-lost", "cashier"))
    assert pay(lost, order["id"]).json()["code"] == "store_not_assigned"
    assert not Payment.objects.exists()


def test_what_else_a_cashier_may_and_may_not_do(cashier, order, menu):
    assert cashier.get("/api/v1/products/").status_code == 200
    assert cashier.get(f"/api/v1/orders/{order['id']}/").status_code == 200
    assert cashier.get("/api/v1/kitchen/orders/").status_code == 403
    assert cashier.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).status_code == 403
    assert place(cashier, [{"product_id": menu["burger"].pk, "quantity": 1}]).status_code == 403
    assert cashier.get("/api/v1/customers/", {"cpf": "52998224725"}).status_code == 403
    cancelled = cashier.post(f"/api/v1/orders/{order['id']}/cancel/")  # the customer gave up at the counter
    assert (cancelled.status_code, cancelled.json()["cancel_reason"]) == (200, "staff")


def test_a_counter_payment_is_never_refunded_through_mercado_pago(cashier, order):
    from payments.services.refunds import RefundNotAllowed, refund_request

    pay(cashier, order["id"])
    with pytest.raises(RefundNotAllowed, match="at the counter"):
        refund_request(payment_id=Payment.objects.get().pk, amount=None, reason="x", actor="boss")
    assert not Refund.objects.exists()


# --- With Mercado Pago in the picture ---------------------------------------------------------------


def test_the_open_qr_is_cancelled_at_mercado_pago_after_the_commit(cashier, kiosk, order, mercadopago):
    qr = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    calls = len(mercadopago.calls)
    assert pay(cashier, order["id"]).status_code == 201
    assert len(mercadopago.calls) == calls  # nothing asked of Mercado Pago inside the request
    assert Payment.objects.get(pk=qr["id"]).status == "cancelled"
    mercadopago.run_tasks()  # the worker cancels it there
    assert gateway().get_order(qr["provider_order_id"])["status"] == "canceled"
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_money_held_for_review_must_be_dealt_with_first(cashier, kiosk, order, mercadopago):
    qr = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(qr["provider_order_id"], paid_amount="1.00")
    mercadopago.deliver()
    response = pay(cashier, order["id"])
    assert (response.status_code, response.json()["code"]) == (409, "payment_under_review")
    assert Payment.objects.filter(provider="counter").count() == 0


# --- The admin ----------------------------------------------------------------------------------------


@pytest.fixture
def cashier_admin(cashier_user):
    client = Client()
    client.force_login(cashier_user)
    return client


def test_the_cashier_pays_at_the_counter_in_the_admin(cashier_admin, order):
    changelist = cashier_admin.get("/admin/orders/order/")
    actions = [name for name, _ in changelist.context["action_form"].fields["action"].choices]
    assert actions == ["", "pay_at_counter"]  # none of the kitchen's or a manager's
    page = cashier_admin.post(
        "/admin/orders/order/", {"action": "pay_at_counter", "_selected_action": [order["id"]]}, follow=True
    )
    assert page.context["total"] == Decimal("61.70")
    done = cashier_admin.post("/admin/orders/order/counter-payment/", {"ids": order["id"], "method": "card_outside"})
    assert done.status_code == 302
    payment = Payment.objects.get()
    assert (payment.method, payment.order.status) == ("card_outside", "received")
    from kiosk.models import AuditRecord

    record = AuditRecord.objects.get(object_id=order["id"])
    assert record.action == "Paid at the counter (Card (machine outside Mercado Pago))"
    assert (record.before["status"], record.after["status"]) == ("awaiting_payment", "received")
    # The payment, in the payments admin, with its method.
    assert cashier_admin.get(f"/admin/payments/payment/{payment.pk}/change/").status_code == 200


def test_the_admin_page_finds_no_order_of_another_store_and_needs_the_permission(order, kitchen_user):
    other = Client()
    other.force_login(staff_of(make_user("caixa-2", "cashier", is_staff=True), store_named("Loja 2")))
    assert other.get("/admin/orders/order/counter-payment/", {"ids": order["id"]}).status_code == 404
    assert other.post("/admin/orders/order/counter-payment/", {"ids": order["id"], "method": "cash"}).status_code == 404
    kitchen_user.is_staff = True
    kitchen_user.save()
    cook = Client()
    cook.force_login(kitchen_user)
    assert cook.post("/admin/orders/order/counter-payment/", {"ids": order["id"], "method": "cash"}).status_code == 403
    assert not Payment.objects.exists()


# --- The sales report ---------------------------------------------------------------------------------


def test_counter_payments_are_reported_apart_from_mercado_pago(cashier, kiosk, order, menu, mercadopago, client):
    paid_by_qr = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()  # 25.90
    qr = kiosk.post(f"/api/v1/orders/{paid_by_qr['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()
    mercadopago.pay(qr["payment"]["provider_order_id"])
    mercadopago.deliver()
    by_card = place(kiosk, [{"product_id": menu["juice"].pk, "quantity": 1}]).json()  # 9.90
    pay(cashier, order["id"], method="cash", amount="61.70")
    pay(cashier, by_card["id"], method="card_outside", amount="9.90")

    today = timezone.localdate()
    summary = reports.sales_summary(start=today, end=today)
    assert {k: summary[k] for k in ("orders", "gross", "mercadopago", "cash", "card_outside", "net")} == {
        "orders": 3,
        "gross": Decimal("97.50"),
        "mercadopago": Decimal("25.90"),
        "cash": Decimal("61.70"),
        "card_outside": Decimal("9.90"),
        "net": Decimal("97.50"),
    }
    client.force_login(make_user("boss", "manager", is_staff=True))
    page = client.get("/admin/reports/sales/").content.decode()
    assert "of which card outside Mercado Pago" in page
    rows = b"".join(client.get("/admin/reports/payments.csv").streaming_content).decode().splitlines()
    assert rows[0].endswith(",method")
    assert sorted(row.rsplit(",", 1)[1] for row in rows[1:]) == ["card_outside", "cash", "mercadopago_qr"]
