"""The kitchen queue, kitchen status moves and the public pickup board."""

import datetime

import pytest
from django.utils import timezone

from orders.models import Order
from orders.services import order_advance, order_cancel, order_mark_paid
from tests.conftest import client_for, place

pytestmark = pytest.mark.django_db
S = Order.Status


@pytest.fixture
def orders(kiosk, menu):
    """Six orders placed a minute apart (o1 oldest), in every status the queue cares about."""
    created = []
    base = timezone.now() - datetime.timedelta(hours=1)
    for i in range(6):
        body = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
        Order.objects.filter(pk=body["id"]).update(created_at=base + datetime.timedelta(minutes=i))
        created.append(body["id"])
    return created


def _move(order_id, *statuses):
    for status in statuses:
        if status == S.RECEIVED:
            order_mark_paid(order_id=order_id)
        elif status == S.CANCELLED:
            order_cancel(order_id=order_id)
        else:
            order_advance(order_id=order_id, status=status)


def test_queue_is_ready_then_in_preparation_then_received_oldest_first(kitchen, orders):
    o1, o2, o3, o4, o5, o6 = orders
    # Statuses are reached in an order unrelated to age, to catch a queue sorted by the wrong thing.
    _move(o6, S.RECEIVED, S.IN_PREPARATION, S.READY)
    _move(o5, S.RECEIVED)
    _move(o4, S.RECEIVED, S.IN_PREPARATION)
    _move(o3, S.RECEIVED, S.IN_PREPARATION, S.READY)
    _move(o2, S.RECEIVED)
    _move(o1, S.RECEIVED, S.IN_PREPARATION, S.READY, S.COMPLETED)

    response = kitchen.get("/api/v1/kitchen/orders/")
    assert response.status_code == 200
    queue = [(o["id"], o["status"]) for o in response.json()]
    assert queue == [
        (o3, "ready"),
        (o6, "ready"),
        (o4, "in_preparation"),
        (o2, "received"),
        (o5, "received"),
    ]


def test_queue_excludes_unpaid_cancelled_and_completed(kitchen, orders):
    o1, o2, o3, *_ = orders
    _move(o1, S.CANCELLED)
    _move(o2, S.RECEIVED, S.IN_PREPARATION, S.READY, S.COMPLETED)
    _move(o3, S.RECEIVED)
    assert [o["id"] for o in kitchen.get("/api/v1/kitchen/orders/").json()] == [o3]


def test_kitchen_moves_an_order_through_to_completed(kitchen, orders):
    order_id = orders[0]
    _move(order_id, S.RECEIVED)
    for status in ("in_preparation", "ready", "completed"):
        response = kitchen.post(f"/api/v1/kitchen/orders/{order_id}/status/", {"status": status}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["status"] == status
        assert response.json()[f"{status}_at"] is not None


def test_double_tap_on_the_same_status_is_harmless(kitchen, orders):
    order_id = orders[0]
    _move(order_id, S.RECEIVED, S.IN_PREPARATION)
    first = Order.objects.get(pk=order_id).in_preparation_at
    response = kitchen.post(f"/api/v1/kitchen/orders/{order_id}/status/", {"status": "in_preparation"}, format="json")
    assert response.status_code == 200
    assert Order.objects.get(pk=order_id).in_preparation_at == first


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ((), "in_preparation"),  # not paid yet
        ((S.RECEIVED,), "ready"),  # skipping a step
        ((S.RECEIVED,), "completed"),
        ((S.RECEIVED, S.IN_PREPARATION, S.READY, S.COMPLETED), "ready"),  # going back
        ((S.CANCELLED,), "in_preparation"),
    ],
)
def test_invalid_kitchen_moves_are_409_and_change_nothing(kitchen, orders, path, target):
    order_id = orders[0]
    _move(order_id, *path)
    before = Order.objects.get(pk=order_id)
    response = kitchen.post(f"/api/v1/kitchen/orders/{order_id}/status/", {"status": target}, format="json")
    assert response.status_code == 409
    problem = response.json()
    assert (problem["code"], problem["current"], problem["target"]) == ("invalid_transition", before.status, target)
    after = Order.objects.get(pk=order_id)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)


@pytest.mark.parametrize(
    "body", [{"status": "received"}, {"status": "cancelled"}, {"status": "x"}, {}, {"status": "ready", "by": "me"}]
)
def test_kitchen_status_rejects_bad_bodies(kitchen, orders, body):
    order_id = orders[0]
    _move(order_id, S.RECEIVED)
    response = kitchen.post(f"/api/v1/kitchen/orders/{order_id}/status/", body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert Order.objects.get(pk=order_id).status == S.RECEIVED


def test_kiosks_cannot_use_kitchen_endpoints(kiosk, orders):
    assert kiosk.get("/api/v1/kitchen/orders/").status_code == 403
    response = kiosk.post(f"/api/v1/kitchen/orders/{orders[0]}/status/", {"status": "ready"}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


def test_pickup_board_is_public_and_shows_only_numbers(orders, kiosk, menu):
    o1, o2, o3, *_ = orders
    _move(o1, S.RECEIVED, S.IN_PREPARATION)
    _move(o2, S.RECEIVED, S.IN_PREPARATION, S.READY)
    _move(o3, S.RECEIVED)
    numbers = {o: Order.objects.get(pk=o).number for o in (o1, o2)}
    response = client_for(None).get("/api/v1/pickup-board/")
    assert response.status_code == 200
    assert response.json() == {"in_preparation": [numbers[o1]], "ready": [numbers[o2]]}


def test_pickup_board_forgets_orders_from_long_ago(orders, settings):
    o1, o2, *_ = orders
    _move(o1, S.RECEIVED, S.IN_PREPARATION, S.READY)
    _move(o2, S.RECEIVED, S.IN_PREPARATION, S.READY)
    Order.objects.filter(pk=o1).update(created_at=timezone.now() - settings.PICKUP_BOARD_WINDOW * 2)
    board = client_for(None).get("/api/v1/pickup-board/").json()
    assert board["ready"] == [Order.objects.get(pk=o2).number]


def test_a_tv_polling_the_pickup_board_gets_304_until_a_number_moves(orders):
    o1, o2, *_ = orders
    _move(o1, S.RECEIVED, S.IN_PREPARATION)
    tv = client_for(None)
    first = tv.get("/api/v1/pickup-board/", {"store": "loja-1"})
    etag = first["ETag"]
    assert first.status_code == 200 and etag
    unchanged = tv.get("/api/v1/pickup-board/", {"store": "loja-1"}, HTTP_IF_NONE_MATCH=etag)
    assert (unchanged.status_code, unchanged.content, unchanged["ETag"]) == (304, b"", etag)
    # Another order paid, not yet being prepared: nothing new on the board, still 304.
    _move(o2, S.RECEIVED)
    assert tv.get("/api/v1/pickup-board/", {"store": "loja-1"}, HTTP_IF_NONE_MATCH=etag).status_code == 304
    # Ours is ready: a new answer with a new ETag, then 304 again.
    _move(o1, S.READY)
    ready = tv.get("/api/v1/pickup-board/", {"store": "loja-1"}, HTTP_IF_NONE_MATCH=etag)
    assert (ready.status_code, ready.json()["ready"]) == (200, [Order.objects.get(pk=o1).number])
    assert ready["ETag"] != etag
    assert tv.get("/api/v1/pickup-board/", {"store": "loja-1"}, HTTP_IF_NONE_MATCH=ready["ETag"]).status_code == 304
