"""The back office: order actions go through the services, money is read-only, CPFs are masked in lists."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User

from orders.models import Customer, Order
from orders.services import ItemRequest, order_place

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, manager_user):
    client.force_login(manager_user)
    return client


@pytest.fixture
def order(terminal, menu):
    return order_place(terminal=terminal, items=[ItemRequest(menu["juice"].pk, 2)], customer_cpf="52998224725")


def _act(admin_client, action, *orders):
    return admin_client.post(
        "/admin/orders/order/",
        {"action": action, "_selected_action": [str(o.pk) for o in orders]},
        follow=True,
    )


def test_manager_marks_an_order_paid_and_the_kitchen_moves_it(admin_client, order):
    page = _act(admin_client, "pay_at_counter", order)  # asks how it was paid, showing what to take
    assert page.status_code == 200 and page.context["total"] == Decimal("19.80")
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT
    response = admin_client.post(
        "/admin/orders/order/counter-payment/", {"ids": str(order.pk), "method": "cash"}, follow=True
    )
    assert response.status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.RECEIVED
    assert LogEntry.objects.filter(object_id=str(order.pk), change_message__contains="Paid at the counter").exists()

    _act(admin_client, "start_preparing", order)
    order.refresh_from_db()
    assert order.status == Order.Status.IN_PREPARATION


def test_invalid_action_is_reported_and_changes_nothing(admin_client, order):
    response = _act(admin_client, "mark_ready", order)
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT
    assert "cannot move to" in response.content.decode()


def test_cancel_action_releases_stock(admin_client, order, menu):
    _act(admin_client, "cancel_unpaid", order)
    order.refresh_from_db()
    menu["juice"].refresh_from_db()
    assert (order.status, order.cancel_reason, menu["juice"].stock) == ("cancelled", "staff", 3)


def test_order_money_and_status_cannot_be_edited(admin_client, order):
    admin_client.post(f"/admin/orders/order/{order.pk}/change/", {"total": "0.01", "status": "completed"})
    order.refresh_from_db()
    assert (str(order.total), order.status) == ("19.80", "awaiting_payment")


def test_lists_mask_cpfs_and_search_finds_them_in_any_format(admin_client, order):
    for url in ("/admin/orders/order/", "/admin/orders/customer/"):
        page = admin_client.get(url).content.decode()
        assert "***.982.247-**" in page
        assert "52998224725" not in page and "529.982.247-25" not in page
    found = admin_client.get("/admin/orders/order/", {"q": "529.982.247-25"}).content.decode()
    assert f"#{order.number}" in found
    assert Customer.objects.count() == 1


def test_admin_pages_load(admin_client, order, menu):
    for url in (
        "/admin/",
        "/admin/orders/product/",
        f"/admin/orders/product/{menu['burger'].pk}/change/",
        "/admin/orders/category/",
        "/admin/orders/terminal/",
        f"/admin/orders/order/{order.pk}/change/",
        "/admin/orders/order/?status__exact=awaiting_payment",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_kitchen_user_without_staff_flag_cannot_enter_the_admin(client, kitchen_user):
    client.force_login(kitchen_user)
    assert client.get("/admin/orders/order/").status_code == 302
    assert not User.objects.get(pk=kitchen_user.pk).is_staff


def test_staff_may_type_a_cpf_with_punctuation(admin_client, manager_user):
    manager_user.is_superuser = True
    manager_user.save()
    response = admin_client.post("/admin/orders/customer/add/", {"cpf": "390.533.447-05", "name": "João", "email": ""})
    assert response.status_code == 302
    assert Customer.objects.get(name="João").cpf == "39053344705"
    response = admin_client.post("/admin/orders/customer/add/", {"cpf": "390.533.447-00", "name": "X", "email": ""})
    assert response.status_code == 200 and "valid CPF" in response.content.decode()


def test_manager_sees_payments_and_the_notification_inbox(admin_client, order):
    from payments.models import Payment, WebhookDelivery

    payment = Payment.objects.create(order=order, amount=order.total)
    delivery = WebhookDelivery.objects.create(topic="order", resource_id="ORD1", payment=payment)
    for url in (
        "/admin/payments/payment/",
        f"/admin/payments/payment/{payment.pk}/change/",
        "/admin/payments/payment/?needs_review__exact=1",
        "/admin/payments/webhookdelivery/",
        f"/admin/payments/webhookdelivery/{delivery.pk}/change/",
    ):
        assert admin_client.get(url).status_code == 200, url
    page = admin_client.get("/admin/payments/payment/").content.decode()
    assert "***.982.247-**" in page and "52998224725" not in page


def test_payment_list_costs_a_constant_number_of_queries(admin_client, terminal, menu, django_assert_max_num_queries):
    from payments.models import Payment

    for _ in range(100):
        o = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)], customer_cpf="52998224725")
        Payment.objects.create(order=o, amount=o.total)
    with django_assert_max_num_queries(12):
        assert admin_client.get("/admin/payments/payment/").status_code == 200


def test_the_back_office_home_links_to_the_screens_and_each_stores_pickup_board(admin_client, terminal):
    from tests.conftest import store_named

    store_named("Loja Fechada", active=False)
    page = admin_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="pt-BR").content.decode()
    for path in ("/kiosk/", "/kitchen/", "/counter/", f"/pickup/{terminal.store.slug}/"):
        assert f'href="{path}"' in page
    assert "/pickup/loja-fechada/" not in page  # a closed store has no board
    assert "Painel de retirada: " + terminal.store.name in page
