"""The menu and the kitchen queue keep one rendering each in the cache, however often what they show moves.

A rendering cached under a key per state of the data was never asked for again once the state moved: a kitchen
queue that moves every second filled a web process's cache with ~90 KB renderings (its memory grew for the
whole 10-minute soak) until the cache's entry limit culled them, throttle counters with them."""

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache

from orders.services import order_mark_paid
from tests.conftest import place

pytestmark = pytest.mark.django_db


def cached_keys() -> set[str]:
    backend = caches["default"]
    assert isinstance(backend, LocMemCache), "the tests run with the default per-process cache"
    return set(backend._cache)


def keys_added_by(request) -> tuple[set[str], object]:
    before = cached_keys()
    answer = request()
    return cached_keys() - before, answer


def test_a_kitchen_display_polling_a_moving_queue_keeps_one_rendering_cached(kiosk, kitchen, menu):
    added, etags = set(), set()
    for _ in range(5):
        order_mark_paid(order_id=place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"])
        keys, answer = keys_added_by(lambda: kitchen.get("/api/v1/kitchen/orders/"))
        assert answer.status_code == 200
        added |= keys
        etags.add(answer["ETag"])
    assert len(etags) == 5  # every poll saw a new queue, rendered anew
    assert len(answer.json()) == 5 and answer["X-Total-Count"] == "5"
    assert len(added) == 1  # ...in place of the previous rendering, not beside it
    # What is kept is the newest queue: a 304 to its ETag, and a 200 with the new card as soon as it moves.
    assert kitchen.get("/api/v1/kitchen/orders/", HTTP_IF_NONE_MATCH=answer["ETag"]).status_code == 304
    order_mark_paid(order_id=place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"])
    moved = kitchen.get("/api/v1/kitchen/orders/", HTTP_IF_NONE_MATCH=answer["ETag"])
    assert moved.status_code == 200 and len(moved.json()) == 6


def test_a_kiosk_polling_a_menu_whose_stock_moves_keeps_one_rendering_cached(kiosk, menu):
    added = set()
    keys, first = keys_added_by(lambda: kiosk.get("/api/v1/products/"))
    added |= keys
    for _ in range(3):  # each order takes one of the juice's 3: the menu's stamp moves
        assert place(kiosk, [{"product_id": menu["juice"].pk, "quantity": 1}]).status_code == 201
        keys, answer = keys_added_by(lambda: kiosk.get("/api/v1/products/"))
        assert answer.status_code == 200
        added |= keys
    assert len(added) == 1
    # The rendering kept is the newest menu, not the first one: the juice, sold out, has left it.
    assert menu["juice"].pk in {p["id"] for p in first.json()}
    assert menu["juice"].pk not in {p["id"] for p in answer.json()}
