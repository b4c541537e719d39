"""Several stores: dining choice, per-store pickup numbers and midnights, who sees which store's orders, the
kitchen queue and the pickup board per store, looking an order up by number, the sales report per store."""

import datetime
import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone

from orders.models import Order, StaffMember, Store, Terminal
from orders.services import ItemRequest, order_advance, order_mark_paid, order_place
from payments import reports
from tests.conftest import client_for, make_user, place, staff_of, store_named

pytestmark = pytest.mark.django_db
S = Order.Status
BURGER = "burger"


def kiosk_of(store, name: str):
    """A terminal of `store` and its kiosk's API client."""
    user = make_user(f"kiosk-{name}", "kiosk")
    terminal = Terminal.objects.create(name=f"Totem {name}", store=store, external_pos_id=f"POS{name}", user=user)
    return terminal, client_for(user)


@pytest.fixture
def both():
    """A store offering eat-in and takeaway (a kiosk must say which)."""
    return store_named("Loja Centro", offers_eat_in=True, offers_takeaway=True)


@pytest.fixture
def two_stores(terminal, kiosk, menu):
    """ "Loja 1" (the `terminal` fixture's) and "Loja 2", each with a kiosk and a kitchen login; an order at
    each, paid and being prepared."""
    other = store_named("Loja 2")
    _, kiosk2 = kiosk_of(other, "L2")
    burger = [{"product_id": menu[BURGER].pk, "quantity": 1}]
    first, second = place(kiosk, burger).json(), place(kiosk2, burger).json()
    for order in (first, second):
        order_mark_paid(order_id=order["id"])
        order_advance(order_id=order["id"], status=S.IN_PREPARATION)
    return {
        "stores": (terminal.store, other),
        "orders": (first, second),
        "kiosks": (kiosk, kiosk2),
        "kitchen2": client_for(staff_of(make_user("cook2", "kitchen"), other)),
    }


# --- Dining choice --------------------------------------------------------------------------------


def test_a_store_offering_both_wants_the_dining_choice(both, menu):
    _, kiosk = kiosk_of(both, "C")
    response = place(kiosk, [{"product_id": menu[BURGER].pk, "quantity": 1}])
    assert (response.status_code, response.json()["code"]) == (400, "invalid_dining")
    assert response["Content-Type"] == "application/problem+json"
    assert "dining" in response.json()["errors"]
    assert not Order.objects.exists()

    eat_in = place(kiosk, [{"product_id": menu[BURGER].pk, "quantity": 1}], dining="eat_in")
    assert eat_in.status_code == 201 and eat_in.json()["dining"] == "eat_in"


def test_a_choice_the_store_does_not_offer_is_refused(menu):
    eat_in_only = store_named("Loja Salão", offers_eat_in=True, offers_takeaway=False)
    _, kiosk = kiosk_of(eat_in_only, "S")
    response = place(kiosk, [{"product_id": menu[BURGER].pk, "quantity": 1}], dining="takeaway")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_dining")
    assert "Loja Salão" in response.json()["detail"]
    unknown = place(kiosk, [{"product_id": menu[BURGER].pk, "quantity": 1}], dining="delivery")
    assert (unknown.status_code, unknown.json()["code"]) == (400, "validation_error")
    assert not Order.objects.exists()


def test_a_takeaway_only_store_defaults_to_takeaway_and_the_kitchen_sees_it(kiosk, kitchen, menu):
    response = place(kiosk, [{"product_id": menu[BURGER].pk, "quantity": 1}])
    assert response.status_code == 201 and response.json()["dining"] == "takeaway"
    order_mark_paid(order_id=response.json()["id"])
    queue = kitchen.get("/api/v1/kitchen/orders/").json()
    assert [(o["number"], o["dining"], o["store"]["slug"]) for o in queue] == [(1, "takeaway", "loja-1")]


def test_eat_in_is_shown_on_the_order_and_in_the_kitchen_queue(both, menu):
    _, kiosk = kiosk_of(both, "C")
    order = place(kiosk, [{"product_id": menu[BURGER].pk, "quantity": 1}], dining="eat_in").json()
    assert kiosk.get(f"/api/v1/orders/{order['id']}/").json()["dining"] == "eat_in"
    order_mark_paid(order_id=order["id"])
    cook = client_for(staff_of(make_user("cook-c", "kitchen"), both))
    assert [o["dining"] for o in cook.get("/api/v1/kitchen/orders/").json()] == ["eat_in"]


# --- Pickup numbers per store ---------------------------------------------------------------------


def test_each_store_numbers_its_own_orders_from_one(terminal, menu):
    other, _ = kiosk_of(store_named("Loja 2"), "L2")
    items = [ItemRequest(menu[BURGER].pk, 1)]
    numbers = [
        (o.store.slug, o.number)
        for o in (order_place(terminal=t, items=items) for t in (terminal, terminal, other, terminal, other))
    ]
    assert numbers == [("loja-1", 1), ("loja-1", 2), ("loja-2", 1), ("loja-1", 3), ("loja-2", 2)]


def test_a_store_in_another_time_zone_restarts_at_its_own_midnight(menu, monkeypatch):
    sao_paulo, _ = kiosk_of(store_named("Loja SP", time_zone="America/Sao_Paulo"), "SP")  # UTC-3
    manaus, _ = kiosk_of(store_named("Loja Manaus", time_zone="America/Manaus"), "AM")  # UTC-4
    clock = {"now": datetime.datetime(2026, 3, 10, 2, 30, tzinfo=datetime.UTC)}  # 23:30 in SP, 22:30 in Manaus
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])

    def order_at(terminal):
        order = order_place(terminal=terminal, items=[ItemRequest(menu[BURGER].pk, 1)])
        return (order.business_date.isoformat(), order.number)

    assert [order_at(sao_paulo), order_at(manaus)] == [("2026-03-09", 1), ("2026-03-09", 1)]
    assert [order_at(sao_paulo), order_at(manaus)] == [("2026-03-09", 2), ("2026-03-09", 2)]
    clock["now"] = datetime.datetime(2026, 3, 10, 3, 30, tzinfo=datetime.UTC)  # 00:30 in SP, 23:30 in Manaus
    assert [order_at(sao_paulo), order_at(manaus)] == [("2026-03-10", 1), ("2026-03-09", 3)]
    clock["now"] = datetime.datetime(2026, 3, 10, 4, 30, tzinfo=datetime.UTC)  # 01:30 in SP, 00:30 in Manaus
    assert [order_at(sao_paulo), order_at(manaus)] == [("2026-03-10", 2), ("2026-03-10", 1)]


def test_orders_and_kitchen_cards_name_their_stores_time_zone(menu):
    """The screens show times in the store's zone, not the device's: the order's store says which."""
    manaus = store_named("Loja Manaus", time_zone="America/Manaus")
    _, kiosk = kiosk_of(manaus, "AM")
    order = place(kiosk, [{"product_id": menu[BURGER].pk, "quantity": 1}]).json()
    assert order["store"] == {"slug": "loja-manaus", "name": "Loja Manaus", "time_zone": "America/Manaus"}
    order_mark_paid(order_id=order["id"])
    cashier = client_for(staff_of(make_user("cashier-am", "cashier"), manaus))
    assert cashier.get("/api/v1/orders/").json()["results"][0]["store"]["time_zone"] == "America/Manaus"
    cook = client_for(staff_of(make_user("cook-am", "kitchen"), manaus))
    assert [card["store"]["time_zone"] for card in cook.get("/api/v1/kitchen/orders/").json()] == ["America/Manaus"]


# --- Who sees which store's orders ----------------------------------------------------------------


def test_kitchen_staff_see_only_their_stores_orders(two_stores, kitchen):
    first, second = two_stores["orders"]
    for cook, mine, theirs in ((kitchen, first, second), (two_stores["kitchen2"], second, first)):
        assert [o["id"] for o in cook.get("/api/v1/orders/").json()["results"]] == [mine["id"]]
        assert [o["id"] for o in cook.get("/api/v1/kitchen/orders/").json()] == [mine["id"]]
        assert cook.get(f"/api/v1/orders/{mine['id']}/").status_code == 200
        assert cook.get(f"/api/v1/orders/{theirs['id']}/").status_code == 404
        moved = cook.post(f"/api/v1/kitchen/orders/{theirs['id']}/status/", {"status": "ready"}, format="json")
        assert moved.status_code == 404
    assert Order.objects.get(pk=second["id"]).status == S.IN_PREPARATION


def test_a_kitchen_login_in_no_store_is_told_so(two_stores):
    lost = client_for(make_user("cook-lost", "kitchen"))
    for url in ("/api/v1/orders/", "/api/v1/kitchen/orders/", f"/api/v1/orders/{two_stores['orders'][0]['id']}/"):
        response = lost.get(url)
        assert (response.status_code, response.json()["code"]) == (403, "store_not_assigned"), url
        assert "cook-lost" in response.json()["detail"]


def test_managers_see_every_store_and_may_filter_one(two_stores, manager):
    first, second = two_stores["orders"]
    listed = manager.get("/api/v1/orders/").json()
    assert {o["id"] for o in listed["results"]} == {first["id"], second["id"]}
    only = manager.get("/api/v1/orders/", {"store": "loja-2"}).json()["results"]
    assert [o["id"] for o in only] == [second["id"]]
    queue = manager.get("/api/v1/kitchen/orders/", {"store": "loja-1"}).json()
    assert [o["id"] for o in queue] == [first["id"]]
    assert len(manager.get("/api/v1/kitchen/orders/").json()) == 2
    unknown = manager.get("/api/v1/orders/", {"store": "nope"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, "validation_error")


def test_a_kitchen_login_cannot_read_another_store_by_asking_for_it(two_stores, kitchen):
    assert kitchen.get("/api/v1/orders/", {"store": "loja-2"}).json()["results"] == []
    assert kitchen.get("/api/v1/kitchen/orders/", {"store": "loja-2"}).json() == []


def test_kiosks_still_see_only_their_terminals_orders(two_stores):
    first, second = two_stores["orders"]
    kiosk, kiosk2 = two_stores["kiosks"]
    assert [o["id"] for o in kiosk.get("/api/v1/orders/").json()["results"]] == [first["id"]]
    assert kiosk.get(f"/api/v1/orders/{second['id']}/").status_code == 404
    assert [o["id"] for o in kiosk2.get("/api/v1/orders/").json()["results"]] == [second["id"]]


# --- Looking an order up by its number -------------------------------------------------------------


def test_the_counter_finds_todays_order_by_its_number(two_stores, kiosk, menu):
    cashier = client_for(staff_of(make_user("caixa", "cashier"), two_stores["stores"][0]))
    unpaid = place(kiosk, [{"product_id": menu[BURGER].pk, "quantity": 1}]).json()  # number 2 of Loja 1
    yesterday_two = Order.objects.get(pk=two_stores["orders"][0]["id"])  # yesterday's number 2, say
    before = yesterday_two.business_date - datetime.timedelta(days=1)
    Order.objects.filter(pk=yesterday_two.pk).update(number=2, business_date=before)
    found = cashier.get("/api/v1/orders/", {"number": 2}).json()["results"]
    assert [(o["id"], o["status"], o["total"]) for o in found] == [(unpaid["id"], "awaiting_payment", "25.90")]
    earlier = cashier.get("/api/v1/orders/", {"number": 2, "business_date": before.isoformat()}).json()["results"]
    assert [o["id"] for o in earlier] == [str(yesterday_two.pk)]
    assert cashier.get("/api/v1/orders/", {"number": 99}).json()["results"] == []


@pytest.mark.parametrize(
    "params", [{"number": "abc"}, {"number": "0"}, {"number": "-1"}, {"number": "1" * 30}, {"number": "²"},
               {"business_date": "2026-13-01"}, {"business_date": "yesterday"}, {"number": "1", "business_date": "1"}]
)  # fmt: skip
def test_a_bad_number_or_date_is_a_400_problem(two_stores, manager, params):
    response = manager.get("/api/v1/orders/", params)
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert response["Content-Type"] == "application/problem+json"


# --- The pickup board per store -------------------------------------------------------------------


def test_the_pickup_board_shows_one_stores_numbers(two_stores, settings):
    first, second = two_stores["orders"]
    board = client_for(None)
    order_advance(order_id=second["id"], status=S.READY)
    assert board.get("/api/v1/pickup-board/", {"store": "loja-1"}).json() == {
        "in_preparation": [first["number"]],
        "ready": [],
    }
    assert board.get("/api/v1/pickup-board/", {"store": "loja-2"}).json() == {
        "in_preparation": [],
        "ready": [second["number"]],
    }


def test_with_several_stores_the_board_asks_which_one(two_stores):
    response = client_for(None).get("/api/v1/pickup-board/")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "store_required"
    assert response.json()["stores"] == ["loja-1", "loja-2"]


def test_an_unknown_or_closed_store_has_no_board(two_stores):
    assert client_for(None).get("/api/v1/pickup-board/", {"store": "nope"}).status_code == 404
    Store.objects.filter(slug="loja-2").update(active=False)
    assert client_for(None).get("/api/v1/pickup-board/", {"store": "loja-2"}).status_code == 404
    # One active store left: the board needs no ?store= again.
    assert client_for(None).get("/api/v1/pickup-board/").json()["in_preparation"] == [two_stores["orders"][0]["number"]]


# --- Store staff, the data migration and the admin -------------------------------------------------


def test_the_migration_puts_storeless_kitchen_logins_in_the_only_store(terminal):
    cook = make_user("old-cook", "kitchen")
    cashier = make_user("old-cashier", "cashier")
    manager = make_user("old-boss", "manager")
    migration = importlib.import_module("orders.migrations.0007_cashier_role_and_store_staff")
    migration.staff_of_the_only_store(apps, None)
    assert {m.user.username: m.store for m in StaffMember.objects.select_related("user", "store")} == {
        "old-cook": terminal.store,
        "old-cashier": terminal.store,
    }
    assert not StaffMember.objects.filter(user=manager).exists()
    assert cook.staff_member.store == cashier.staff_member.store == terminal.store


def test_with_several_stores_the_migration_leaves_the_choice_to_a_manager(terminal):
    store_named("Loja 2")
    make_user("old-cook", "kitchen")
    importlib.import_module("orders.migrations.0007_cashier_role_and_store_staff").staff_of_the_only_store(apps, None)
    assert not StaffMember.objects.exists()


def test_the_admin_lists_stores_with_their_terminals_and_staff(admin_client, two_stores, kitchen_user):
    page = admin_client.get("/admin/orders/store/").content.decode()
    assert "Loja 1" in page and "Loja 2" in page
    store = two_stores["stores"][0]
    change = admin_client.get(f"/admin/orders/store/{store.pk}/change/").content.decode()
    assert "Totem A" in change and "cook" in change
    assert admin_client.get("/admin/orders/terminal/", {"q": "Loja 2"}).status_code == 200  # search by store
    assert admin_client.get(f"/admin/auth/user/{kitchen_user.pk}/change/").status_code == 200


# --- The sales report per store -------------------------------------------------------------------


def test_the_sales_report_filters_by_store(two_stores, manager_user, client):
    today = timezone.localdate()
    everything = reports.sales_summary(start=today, end=today)
    one = reports.sales_summary(start=today, end=today, store=two_stores["stores"][1])
    assert (everything["orders"], everything["gross"]) == (2, Decimal("51.80"))
    assert (one["orders"], one["gross"], one["cash"]) == (1, Decimal("25.90"), Decimal("25.90"))
    terminals = reports.sales_by_terminal(start=today, end=today, store=two_stores["stores"][1])
    assert [row["name"] for row in terminals] == ["Totem L2"]
    assert [
        row["quantity"] for row in reports.sales_by_product(start=today, end=today, store=two_stores["stores"][1])
    ] == [1]

    client.force_login(manager_user)
    page = client.get("/admin/reports/sales/", {"store": "loja-2"})
    assert page.context["report"]["summary"]["orders"] == 1
    assert 'value="loja-2" selected' in page.content.decode()
    csv = client.get("/admin/reports/sales.csv", {"store": "loja-2"})
    assert csv["Content-Disposition"].startswith('attachment; filename="sales-loja-2-')
    bad = client.get("/admin/reports/payments.csv", {"store": "nope"})
    assert bad.status_code == 400 and b"nope" in bad.content
    assert client.get("/admin/reports/sales/", {"store": "<nope>"}).context["error"]


def test_the_demo_has_two_stores_with_their_terminals_kitchen_and_cashier(settings):
    from django.contrib.auth.models import User
    from django.core.management import call_command

    settings.DEBUG = True
    call_command("seed_demo")
    call_command("seed_demo")  # safe to run again
    terminals = {
        t.user.username: (t.store.slug, t.external_pos_id) for t in Terminal.objects.select_related("store", "user")
    }
    assert terminals == {"kiosk1": ("loja-centro", "KIOSK001"), "kiosk2": ("loja-aeroporto", "KIOSK002")}
    staff = {m.user.username: m.store.slug for m in StaffMember.objects.select_related("user", "store")}
    assert staff == {"kitchen1": "loja-centro", "cashier1": "loja-centro"}
    cashier = User.objects.get(username="cashier1")
    assert cashier.check_password("cashier1") and cashier.is_staff
    assert list(cashier.groups.values_list("name", flat=True)) == ["cashier"]
    assert cashier.has_perm("payments.record_counter_payment") and not cashier.has_perm("payments.refund_payment")
    assert Store.objects.get(slug="loja-aeroporto").offers_eat_in is False
