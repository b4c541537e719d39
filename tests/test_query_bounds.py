"""Database queries per request have fixed upper bounds on the lunch-rush paths (what `make bench` drives),
whatever the size of the order, the menu or the kitchen queue. A bound that moves up is a regression to
explain; these are asserted with `django_assert_max_num_queries` and counted as in production (JWT login)."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from orders.models import Option, OptionGroup, Order, Product
from orders.services import order_advance, order_mark_paid
from tests.conftest import place
from tests.test_payments_notifications import signed_post

pytestmark = pytest.mark.django_db

# What each path may cost: the login and its roles (2), then the path's own reads and writes.
MENU_RENDERED, MENU_CACHED = 7, 3
PLACE_ORDER = 16  # claim, terminal, products, options, groups, counter x2, order, lines, choices x2, event...
POLL = 4
NOTIFICATION_COPY = 2
KITCHEN_RENDERED, KITCHEN_CACHED = 7, 4
PICKUP_BOARD = 2  # the store, its numbers (no login: a public TV)


def bearer(user) -> APIClient:
    """A client that logs in as a kiosk does: a bearer token, checked against the database on each request."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


def queries(call) -> int:
    with CaptureQueriesContext(connection) as captured:
        call()
    # Savepoints are not round trips worth counting against a path; statements are.
    return sum(1 for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT")))


def grow_menu(menu, products: int) -> None:
    for n in range(products):
        product = Product.objects.create(category=menu["lanche"], name=f"Lanche {n}", price=Decimal("20.00"))
        product.suggestions.add(menu["burger"])
        group = OptionGroup.objects.create(product=product, name="Adicionais", max_choices=3)
        for o in range(3):
            Option.objects.create(group=group, name=f"Extra {o}", price=Decimal("1.00"), position=o)


def test_the_menu_costs_the_same_for_5_or_45_products(terminal, menu):
    kiosk = bearer(terminal.user)
    small = queries(lambda: kiosk.get("/api/v1/products/"))
    cached = queries(lambda: kiosk.get("/api/v1/products/"))
    grow_menu(menu, 40)
    big = queries(lambda: kiosk.get("/api/v1/products/"))
    # Without any option group on the menu there is no option to read: one query less.
    assert small <= big <= MENU_RENDERED
    assert cached <= MENU_CACHED
    assert len(kiosk.get("/api/v1/products/").json()) == 42


def test_placing_an_order_costs_the_same_for_1_or_12_lines(terminal, menu):
    kiosk = bearer(terminal.user)
    grow_menu(menu, 12)
    lines = [
        {"product_id": p.pk, "quantity": 2, "options": [{"option_id": p.option_groups.get().options.first().pk}]}
        for p in Product.objects.filter(name__startswith="Lanche")
    ]
    one = queries(lambda: place(kiosk, lines[:1]))
    twelve = queries(lambda: place(kiosk, lines))
    assert one == twelve <= PLACE_ORDER
    assert Order.objects.count() == 2 and Order.objects.order_by("number").last().items.count() == 12


def test_the_payment_poll_costs_the_same_however_big_the_order(terminal, menu, mercadopago):
    kiosk = bearer(terminal.user)
    grow_menu(menu, 10)
    big = place(kiosk, [{"product_id": p.pk, "quantity": 1} for p in Product.objects.filter(active=True)]).json()
    small = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    for order in (big, small):
        kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)
    assert queries(lambda: kiosk.get(f"/api/v1/orders/{big['id']}/payment/")) <= POLL
    assert queries(lambda: kiosk.get(f"/api/v1/orders/{small['id']}/payment/")) <= POLL


def test_a_copy_of_a_stored_notification_costs_two_queries(kiosk, order, mercadopago, settings):
    settings.MERCADOPAGO_WEBHOOK_SECRET = "bounds-secret"
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex).json()
    data_id = payment["payment"]["provider_order_id"]
    body = {"action": "order.processed", "type": "order", "data": {"id": data_id}}
    request_id = str(uuid.uuid4())
    assert signed_post(data_id=data_id, body=body, request_id=request_id).status_code == 200
    for _ in range(3):
        count = queries(lambda: signed_post(data_id=data_id, body=body, request_id=request_id))
        assert count <= NOTIFICATION_COPY


def test_the_kitchen_queue_costs_the_same_for_3_or_40_orders(terminal, kitchen_user, menu):
    kiosk, kitchen = bearer(terminal.user), bearer(kitchen_user)

    def sell(n):
        for _ in range(n):
            order_mark_paid(order_id=place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"])

    sell(3)
    few = queries(lambda: kitchen.get("/api/v1/kitchen/orders/"))
    unchanged = queries(lambda: kitchen.get("/api/v1/kitchen/orders/"))
    sell(37)
    many = queries(lambda: kitchen.get("/api/v1/kitchen/orders/"))
    assert few == many <= KITCHEN_RENDERED
    assert unchanged <= KITCHEN_CACHED
    response = kitchen.get("/api/v1/kitchen/orders/?limit=10")
    assert len(response.json()) == 10 and response["X-Total-Count"] == "40"
    # A display that polls with the ETag gets a 304 while nothing moved, a 200 as soon as an order does.
    etag = kitchen.get("/api/v1/kitchen/orders/")["ETag"]
    assert kitchen.get("/api/v1/kitchen/orders/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    Order.objects.filter(pk=response.json()[0]["id"]).update(
        status=Order.Status.READY, updated_at=datetime.datetime.now(datetime.UTC)
    )
    assert kitchen.get("/api/v1/kitchen/orders/", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_the_pickup_board_costs_the_same_for_3_or_40_orders_and_for_a_304(terminal, menu):
    kiosk, tv = bearer(terminal.user), APIClient()

    def prepare(n):
        for _ in range(n):
            order_id = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"]
            order_mark_paid(order_id=order_id)
            order_advance(order_id=order_id, status=Order.Status.IN_PREPARATION)

    prepare(3)
    few = queries(lambda: tv.get("/api/v1/pickup-board/?store=loja-1"))
    prepare(37)
    many = queries(lambda: tv.get("/api/v1/pickup-board/?store=loja-1"))
    etag = tv.get("/api/v1/pickup-board/?store=loja-1")["ETag"]
    unchanged = queries(lambda: tv.get("/api/v1/pickup-board/?store=loja-1", HTTP_IF_NONE_MATCH=etag))
    assert few == many == unchanged <= PICKUP_BOARD
    assert len(tv.get("/api/v1/pickup-board/?store=loja-1").json()["in_preparation"]) == 40
