"""Options (modifiers), combos and upsell on the menu and on orders: what kiosks read, what orders cost and
reserve, the rules a choice must keep, the live sold-out switch and the menu's ETag."""

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kiosk.events.models import Event
from orders.models import Category, Option, OptionGroup, Order, OrderItemOption, Product, Terminal
from orders.services import (
    InvalidOptions,
    ItemRequest,
    OptionRequest,
    order_cancel,
    order_mark_paid,
    order_place,
)
from payments import reports
from tests.conftest import client_for, place

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def combo_menu(menu):
    """The conftest menu (X-Burger 25.90 unlimited, Suco 9.90 stock 3, Torta inactive) with:
    X-Burger: Adicionais (Bacon +4.00, Queijo extra +3.00; 0..3), Retirar (Cebola, Picles; 0..2);
    Batata grande 16.90 (stock 5), Refrigerante 6.90;
    Combo X-Burger 39.90: Lanche (X-Burger; 1..1), Acompanhamento (Batata grande +2.00; 1..1),
    Bebida (Refrigerante +0.00, Suco +2.50; 1..1), Sobremesa (Torta +3.00, inactive product; 0..1)."""
    burger = menu["burger"]
    adicionais = OptionGroup.objects.create(product=burger, name="Adicionais", min_choices=0, max_choices=3)
    retirar = OptionGroup.objects.create(product=burger, name="Retirar", min_choices=0, max_choices=2, position=1)
    acompanhamento = Category.objects.create(name="Acompanhamento", slug="acompanhamento", position=3)
    fries = Product.objects.create(category=acompanhamento, name="Batata grande", price=D("16.90"), stock=5)
    soda = Product.objects.create(category=menu["bebida"], name="Refrigerante", price=D("6.90"))
    combos = Category.objects.create(name="Combos", slug="combos", position=0)
    combo = Product.objects.create(category=combos, name="Combo X-Burger", kind="combo", price=D("39.90"))

    def slot(name, least, most, position):
        return OptionGroup.objects.create(
            product=combo, name=name, min_choices=least, max_choices=most, position=position
        )

    lanche, side = slot("Lanche", 1, 1, 0), slot("Acompanhamento", 1, 1, 1)
    drink, dessert = slot("Bebida", 1, 1, 2), slot("Sobremesa", 0, 1, 3)
    return SimpleNamespace(
        **menu,
        fries=fries,
        soda=soda,
        combo=combo,
        adicionais=adicionais,
        retirar=retirar,
        bacon=Option.objects.create(group=adicionais, name="Bacon", price=D("4.00")),
        queijo=Option.objects.create(group=adicionais, name="Queijo extra", price=D("3.00"), position=1),
        cebola=Option.objects.create(group=retirar, name="Cebola"),
        picles=Option.objects.create(group=retirar, name="Picles", position=1),
        combo_burger=Option.objects.create(group=lanche, name="X-Burger", product=burger),
        combo_fries=Option.objects.create(group=side, name="Batata grande", price=D("2.00"), product=fries),
        combo_soda=Option.objects.create(group=drink, name="Refrigerante", product=soda),
        combo_juice=Option.objects.create(group=drink, name="Suco", price=D("2.50"), product=menu["juice"], position=1),
        combo_pie=Option.objects.create(group=dessert, name="Torta", price=D("3.00"), product=menu["pie"]),
    )


def combo_item(m, *, quantity=1, drink=None, burger_options=(), extra=()):
    """A Combo X-Burger line: the burger (with its own options), Batata grande and a drink (Suco unless told)."""
    return {
        "product_id": m.combo.pk,
        "quantity": quantity,
        "options": [
            {"option_id": m.combo_burger.pk, "options": list(burger_options)},
            {"option_id": m.combo_fries.pk},
            {"option_id": (drink or m.combo_juice).pk},
            *extra,
        ],
    }


def stock(product) -> int | None:
    return Product.objects.get(pk=product.pk).stock


# --- The menu -------------------------------------------------------------------------------------


def test_the_menu_shows_kind_option_groups_and_options_with_their_prices(kiosk, combo_menu):
    m = combo_menu
    products = {p["name"]: p for p in kiosk.get("/api/v1/products/").json()}
    assert next(iter(products)) == "Combo X-Burger"  # the Combos category comes first
    assert {name: p["kind"] for name, p in products.items()} == {
        "Combo X-Burger": "combo",
        "X-Burger": "item",
        "Suco": "item",
        "Refrigerante": "item",
        "Batata grande": "item",
    }
    assert products["X-Burger"]["option_groups"] == [
        {
            "id": m.adicionais.pk,
            "name": "Adicionais",
            "min_choices": 0,
            "max_choices": 3,
            "options": [
                {"id": m.bacon.pk, "name": "Bacon", "price": "4.00", "product_id": None, "available": True},
                {"id": m.queijo.pk, "name": "Queijo extra", "price": "3.00", "product_id": None, "available": True},
            ],
        },
        {
            "id": m.retirar.pk,
            "name": "Retirar",
            "min_choices": 0,
            "max_choices": 2,
            "options": [
                {"id": m.cebola.pk, "name": "Cebola", "price": "0.00", "product_id": None, "available": True},
                {"id": m.picles.pk, "name": "Picles", "price": "0.00", "product_id": None, "available": True},
            ],
        },
    ]
    slots = products["Combo X-Burger"]["option_groups"]
    assert [(g["name"], g["min_choices"], g["max_choices"]) for g in slots] == [
        ("Lanche", 1, 1),
        ("Acompanhamento", 1, 1),
        ("Bebida", 1, 1),
        ("Sobremesa", 0, 1),
    ]
    assert [(o["name"], o["price"], o["product_id"], o["available"]) for o in slots[2]["options"]] == [
        ("Refrigerante", "0.00", m.soda.pk, True),
        ("Suco", "2.50", m.juice.pk, True),
    ]
    # The pie is off the menu: the kiosk greys its combo choice out.
    assert [(o["name"], o["available"]) for o in slots[3]["options"]] == [("Torta", False)]
    assert products["Suco"]["option_groups"] == [] and products["Suco"]["suggestions"] == []


def test_a_sold_out_or_switched_off_choice_is_greyed_out_on_the_next_read(kiosk, manager, combo_menu):
    m = combo_menu
    Product.objects.filter(pk=m.juice.pk).update(stock=0)
    assert manager.patch(f"/api/v1/options/{m.bacon.pk}/", {"active": False}, format="json").status_code == 200

    products = {p["name"]: p for p in kiosk.get("/api/v1/products/").json()}
    assert "Suco" not in products
    drinks = products["Combo X-Burger"]["option_groups"][2]["options"]
    assert [(o["name"], o["available"]) for o in drinks] == [("Refrigerante", True), ("Suco", False)]
    adicionais = products["X-Burger"]["option_groups"][0]["options"]
    assert [(o["name"], o["available"]) for o in adicionais] == [("Bacon", False), ("Queijo extra", True)]


def test_suggestions_are_the_products_the_caller_can_see(kiosk, manager, combo_menu):
    m = combo_menu
    m.burger.suggestions.add(m.soda, m.pie, m.fries)
    Product.objects.filter(pk=m.fries.pk).update(stock=0)
    kiosk_view = kiosk.get(f"/api/v1/products/{m.burger.pk}/").json()
    assert kiosk_view["suggestions"] == [m.soda.pk]  # the inactive pie and the sold-out fries are not offered
    manager_view = manager.get(f"/api/v1/products/{m.burger.pk}/").json()
    assert sorted(manager_view["suggestions"]) == sorted([m.soda.pk, m.pie.pk, m.fries.pk])
    assert m.soda.suggestions.count() == 0  # suggesting is one-way


def test_the_menu_costs_the_same_few_queries_however_many_products_and_options(
    terminal, combo_menu, django_assert_num_queries
):
    from django.contrib.auth.models import User

    def read_menu(client, queries):
        with django_assert_num_queries(queries):
            return client.get("/api/v1/products/")

    # A fresh login, as each kiosk request is (its roles are read again), the menu's stamp, then: products with
    # their categories, option groups, options with their products, suggestions.
    kiosk = client_for(User.objects.get(pk=terminal.user_id))
    assert len(read_menu(kiosk, 6).json()) == 5
    # Nothing changed: the rendered menu is served again (roles and stamp only), to every kiosk.
    assert len(read_menu(client_for(User.objects.get(pk=terminal.user_id)), 2).json()) == 5
    for n in range(10):
        product = Product.objects.create(category=combo_menu.lanche, name=f"Burger {n}", price=D("20.00"))
        product.suggestions.add(combo_menu.soda, combo_menu.fries)
        for g in range(2):
            group = OptionGroup.objects.create(product=product, name=f"G{g}", max_choices=2)
            for o in range(3):
                Option.objects.create(group=group, name=f"O{o}", price=D("1.00"), position=o)
    assert len(read_menu(client_for(User.objects.get(pk=terminal.user_id)), 6).json()) == 15


# --- Prices ---------------------------------------------------------------------------------------


def test_a_line_costs_its_product_plus_its_options_and_the_order_shows_them(kiosk, combo_menu):
    m = combo_menu
    response = place(
        kiosk,
        [
            {
                "product_id": m.burger.pk,
                "quantity": 2,
                "options": [{"option_id": m.bacon.pk, "quantity": 2}, {"option_id": m.cebola.pk}],
            },
            {"product_id": m.juice.pk, "quantity": 1},
        ],
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    burger, juice = body["items"]
    assert (burger["unit_price"], burger["line_total"]) == ("33.90", "67.80")  # 25.90 + 2 x 4.00
    assert burger["options"] == [
        {
            "option_id": m.bacon.pk,
            "group": "Adicionais",
            "name": "Bacon",
            "price": "4.00",
            "quantity": 2,
            "product_id": None,
            "options": [],
        },
        {
            "option_id": m.cebola.pk,
            "group": "Retirar",
            "name": "Cebola",
            "price": "0.00",
            "quantity": 1,
            "product_id": None,
            "options": [],
        },
    ]
    assert juice["options"] == []
    assert body["total"] == "77.70"
    assert Order.objects.get(pk=body["id"]).total == D("77.70")

    # As at order time: a later price or name change does not touch the order.
    Option.objects.filter(pk=m.bacon.pk).update(price=D("9.00"), name="Bacon duplo")
    again = kiosk.get(f"/api/v1/orders/{body['id']}/").json()
    assert again == body


def test_a_combo_costs_its_price_plus_its_choices_and_shows_its_parts(kiosk, combo_menu):
    m = combo_menu
    line = combo_item(
        m, quantity=2, burger_options=[{"option_id": m.bacon.pk}, {"option_id": m.cebola.pk}]
    )  # 39.90 + bacon 4.00 + batata grande 2.00 + suco 2.50
    response = place(kiosk, [line])
    assert response.status_code == 201, response.json()
    item = response.json()["items"][0]
    assert (item["name"], item["unit_price"], item["quantity"], item["line_total"]) == (
        "Combo X-Burger",
        "48.40",
        2,
        "96.80",
    )
    assert response.json()["total"] == "96.80"
    assert [(o["group"], o["name"], o["price"], o["product_id"]) for o in item["options"]] == [
        ("Lanche", "X-Burger", "0.00", m.burger.pk),
        ("Acompanhamento", "Batata grande", "2.00", m.fries.pk),
        ("Bebida", "Suco", "2.50", m.juice.pk),
    ]
    assert [(o["group"], o["name"], o["price"]) for o in item["options"][0]["options"]] == [
        ("Adicionais", "Bacon", "4.00"),
        ("Retirar", "Cebola", "0.00"),
    ]
    # The parts' stock is taken as if they were ordered alone: 2 combos, 2 fries and 2 juices.
    assert (stock(m.fries), stock(m.juice)) == (3, 1)


def test_the_kitchen_queue_and_the_events_show_the_combo_with_its_parts(kiosk, kitchen, combo_menu):
    m = combo_menu
    order = place(kiosk, [combo_item(m, burger_options=[{"option_id": m.picles.pk}])]).json()
    order_mark_paid(order_id=order["id"])
    queue = kitchen.get("/api/v1/kitchen/orders/").json()
    item = queue[0]["items"][0]
    assert item["name"] == "Combo X-Burger"
    assert [o["name"] for o in item["options"]] == ["X-Burger", "Batata grande", "Suco"]
    assert [(o["group"], o["name"]) for o in item["options"][0]["options"]] == [("Retirar", "Picles")]

    for event_type in ("order.placed", "order.paid"):
        data = Event.objects.get(order_id=order["id"], type=event_type).data
        (line,) = data["items"]
        assert (line["unit_price"], line["line_total"]) == ("44.40", "44.40")
        assert line["options"][0]["name"] == "X-Burger" and line["options"][0]["product_id"] == m.burger.pk
        assert line["options"][0]["options"] == [
            {
                "option_id": m.picles.pk,
                "group": "Retirar",
                "name": "Picles",
                "price": "0.00",
                "quantity": 1,
                "product_id": None,
            }
        ]
        assert line["options"][2] == {
            "option_id": m.combo_juice.pk,
            "group": "Bebida",
            "name": "Suco",
            "price": "2.50",
            "quantity": 1,
            "product_id": m.juice.pk,
            "options": [],
        }


def test_the_kitchen_queue_reads_the_choices_of_any_number_of_orders_in_the_same_queries(
    kiosk, kitchen, combo_menu, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    m = combo_menu

    def queue_queries():
        with CaptureQueriesContext(connection) as queries:
            assert kitchen.get("/api/v1/kitchen/orders/").status_code == 200
        return len(queries)

    def sell():
        order = place(kiosk, [combo_item(m, drink=m.combo_soda, burger_options=[{"option_id": m.bacon.pk}])]).json()
        order_mark_paid(order_id=order["id"])

    kitchen.get("/api/v1/kitchen/orders/")  # the login's roles and store, read once
    sell()
    one = queue_queries()  # rendered: the queue's stamp, the orders, their lines and their choices
    assert one == 4
    # Nothing moved: the stamp, and the rendering is served again.
    assert queue_queries() == 1
    for _ in range(4):
        sell()
    assert queue_queries() == one
    with django_assert_max_num_queries(1):
        queue = kitchen.get("/api/v1/kitchen/orders/").json()
    assert len(queue) == 5 and all(o["items"][0]["options"][0]["options"][0]["name"] == "Bacon" for o in queue)


def test_the_mercado_pago_order_adds_up_to_the_total_with_options(kiosk, combo_menu, mercadopago):
    from payments.simulator.models import SimOrder

    m = combo_menu
    order = place(
        kiosk,
        [
            combo_item(m, burger_options=[{"option_id": m.bacon.pk}]),
            {"product_id": m.burger.pk, "quantity": 3, "options": [{"option_id": m.queijo.pk, "quantity": 2}]},
        ],
    ).json()
    assert order["total"] == "144.10"  # 48.40 + 3 x 31.90
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY="pay-1").json()["payment"]
    sent = SimOrder.objects.get(pk=payment["provider_order_id"])
    assert sum(D(i["unit_price"]) * i["quantity"] for i in sent.items) == D("144.10") == D(str(sent.total_amount))


# --- Rules ----------------------------------------------------------------------------------------


BAD_CHOICES = {
    "too many in a group": (
        lambda m: [
            {
                "product_id": m.burger.pk,
                "quantity": 1,
                "options": [{"option_id": m.bacon.pk, "quantity": 2}, {"option_id": m.queijo.pk, "quantity": 2}],
            }
        ],
        "Adicionais",
        "Choose at most 3 of 'Adicionais' for 'X-Burger' (4 chosen).",
    ),
    "a required slot left empty": (
        lambda m: [
            {
                "product_id": m.combo.pk,
                "quantity": 1,
                "options": [{"option_id": m.combo_burger.pk}, {"option_id": m.combo_fries.pk}],
            }
        ],
        "Bebida",
        "Choose exactly 1 of 'Bebida' for 'Combo X-Burger' (0 chosen).",
    ),
    "two drinks in a one-drink slot": (
        lambda m: [combo_item(m, extra=[{"option_id": m.combo_soda.pk}])],
        "Bebida",
        "Choose exactly 1 of 'Bebida' for 'Combo X-Burger' (2 chosen).",
    ),
    "an option of another product": (
        lambda m: [{"product_id": m.burger.pk, "quantity": 1, "options": [{"option_id": m.combo_soda.pk}]}],
        None,
        None,
    ),
    "an option that does not exist": (
        lambda m: [{"product_id": m.burger.pk, "quantity": 1, "options": [{"option_id": 987654}]}],
        None,
        "Option 987654 is not one of the options of 'X-Burger'.",
    ),
    "a switched-off option": (
        lambda m: (
            Option.objects.filter(pk=m.bacon.pk).update(active=False),
            [{"product_id": m.burger.pk, "quantity": 1, "options": [{"option_id": m.bacon.pk}]}],
        )[1],
        "Adicionais",
        "'Bacon' (Adicionais) of 'X-Burger' is not available right now.",
    ),
    "a combo choice whose product is off the menu": (
        lambda m: [combo_item(m, extra=[{"option_id": m.combo_pie.pk}])],
        "Sobremesa",
        "'Torta' (Sobremesa) of 'Combo X-Burger' is not available right now.",
    ),
    "the same option twice": (
        lambda m: [
            {
                "product_id": m.burger.pk,
                "quantity": 1,
                "options": [{"option_id": m.bacon.pk}, {"option_id": m.bacon.pk}],
            }
        ],
        "Adicionais",
        None,
    ),
    "options on an option that is not a combo part": (
        lambda m: [
            {
                "product_id": m.burger.pk,
                "quantity": 1,
                "options": [{"option_id": m.bacon.pk, "options": [{"option_id": m.cebola.pk}]}],
            }
        ],
        "Adicionais",
        "'Bacon' (Adicionais) of 'X-Burger' takes no options of its own.",
    ),
    "a combo part's own options breaking its rules": (
        lambda m: [
            combo_item(
                m,
                burger_options=[
                    {"option_id": m.cebola.pk},
                    {"option_id": m.picles.pk},
                    {"option_id": m.bacon.pk, "quantity": 4},
                ],
            )
        ],
        "Adicionais",
        "Choose at most 3 of 'Adicionais' for 'X-Burger' (4 chosen).",
    ),
    "the combo's option used on its part": (
        lambda m: [combo_item(m, burger_options=[{"option_id": m.combo_fries.pk}])],
        None,
        None,
    ),
}


@pytest.mark.parametrize("case", BAD_CHOICES, ids=list(BAD_CHOICES))
def test_choices_that_break_the_rules_are_invalid_options_and_reserve_nothing(kiosk, combo_menu, case):
    build, group, detail = BAD_CHOICES[case]
    m = combo_menu
    response = place(kiosk, [{"product_id": m.juice.pk, "quantity": 1}, *build(m)])
    assert response.status_code == 400, response.json()
    body = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert body["code"] == "invalid_options"
    assert body["group"] == group
    if detail:
        assert body["detail"] == detail
    assert not Order.objects.exists() and not OrderItemOption.objects.exists()
    assert (stock(m.juice), stock(m.fries)) == (3, 5)


@pytest.mark.parametrize(
    "options",
    [
        [{"option_id": 1, "quantity": 0}],
        [{"option_id": 1, "quantity": 51}],
        [{"option_id": "1"}],
        [{"option_id": 1, "price": "0.00"}],
        [{"option_id": 1, "options": [{"option_id": 2, "options": [{"option_id": 3}]}]}],  # deeper than a part
        [{}],
        "bacon",
        [{"option_id": 1}] * 31,
    ],
)
def test_malformed_options_are_validation_errors(kiosk, combo_menu, options):
    response = place(kiosk, [{"product_id": combo_menu.burger.pk, "quantity": 1, "options": options}])
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert "items" in response.json()["errors"]
    assert not Order.objects.exists()


def test_ordering_a_combo_without_its_choices_names_the_first_slot(kiosk, combo_menu):
    response = place(kiosk, [{"product_id": combo_menu.combo.pk, "quantity": 1}])
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["group"], response.json()["product_name"]) == (
        "invalid_options",
        "Lanche",
        "Combo X-Burger",
    )


# --- Stock of combo parts -------------------------------------------------------------------------


def test_a_sold_out_combo_choice_is_out_of_stock_naming_it_and_nothing_is_reserved(kiosk, combo_menu):
    m = combo_menu
    Product.objects.filter(pk=m.fries.pk).update(stock=1)
    response = place(kiosk, [combo_item(m, quantity=2)])
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["product_id"], body["product_name"], body["available"]) == (
        "out_of_stock",
        m.fries.pk,
        "Batata grande",
        1,
    )
    assert (stock(m.fries), stock(m.juice)) == (1, 3)
    assert not Order.objects.exists()


def test_combo_parts_and_plain_lines_share_the_stock(kiosk, combo_menu):
    m = combo_menu
    # 2 juices alone and 1 in the combo: the 3 there are.
    assert place(kiosk, [{"product_id": m.juice.pk, "quantity": 2}, combo_item(m)]).status_code == 201
    assert stock(m.juice) == 0
    refused = place(kiosk, [combo_item(m)])
    assert (refused.status_code, refused.json()["product_name"]) == (409, "Suco")
    # With another drink the combo still sells.
    assert place(kiosk, [combo_item(m, drink=m.combo_soda)]).status_code == 201
    assert stock(m.fries) == 3


def test_cancelling_gives_back_the_parts_of_its_combos(kiosk, combo_menu):
    m = combo_menu
    order = place(kiosk, [combo_item(m, quantity=2), {"product_id": m.fries.pk, "quantity": 1}]).json()
    assert (stock(m.fries), stock(m.juice)) == (2, 1)
    assert kiosk.post(f"/api/v1/orders/{order['id']}/cancel/").status_code == 200
    assert (stock(m.fries), stock(m.juice)) == (5, 3)


def test_choices_are_stored_right_where_a_bulk_insert_returns_no_ids(kiosk, combo_menu, monkeypatch):
    """MySQL's bulk insert returns no ids (MariaDB's and SQLite's do): the parts' own options still hang under
    the right part of the right line."""
    from django.db import connection

    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    m = combo_menu
    response = place(
        kiosk,
        [
            {"product_id": m.burger.pk, "quantity": 1, "options": [{"option_id": m.picles.pk}]},
            combo_item(m, burger_options=[{"option_id": m.bacon.pk}, {"option_id": m.cebola.pk}]),
            combo_item(m, drink=m.combo_soda, burger_options=[{"option_id": m.queijo.pk}]),
        ],
    )
    assert response.status_code == 201, response.json()
    stored = kiosk.get(f"/api/v1/orders/{response.json()['id']}/").json()
    assert stored == response.json()
    plain, first, second = stored["items"]
    assert [o["name"] for o in plain["options"]] == ["Picles"]
    assert [o["name"] for o in first["options"][0]["options"]] == ["Bacon", "Cebola"]
    assert [o["name"] for o in second["options"]] == ["X-Burger", "Batata grande", "Refrigerante"]
    assert [o["name"] for o in second["options"][0]["options"]] == ["Queijo extra"]


def test_quantities_multiply_down_a_combo_line(terminal, combo_menu):
    """A slot taking 2 of a part takes 2 per combo; a part's own options are per unit of the part."""
    m = combo_menu
    OptionGroup.objects.filter(pk=m.combo_fries.group_id).update(max_choices=2)
    OptionGroup.objects.filter(pk=m.combo_burger.group_id).update(max_choices=2)
    order = order_place(
        terminal=terminal,
        items=[
            ItemRequest(
                m.combo.pk,
                2,
                options=(
                    OptionRequest(m.combo_burger.pk, 2, options=(OptionRequest(m.bacon.pk, 2),)),
                    OptionRequest(m.combo_fries.pk, 2),
                    OptionRequest(m.combo_juice.pk),
                ),
            )
        ],
    )
    # A combo: 39.90 + 2 burgers with 2 bacon each (16.00) + 2 x batata grande (4.00) + suco (2.50) = 62.40.
    assert (order.items.get().unit_price, order.total) == (D("62.40"), D("124.80"))
    assert (stock(m.fries), stock(m.juice)) == (1, 1)
    order_cancel(order_id=order.pk)
    assert (stock(m.fries), stock(m.juice)) == (5, 3)


# --- The live sold-out switch ---------------------------------------------------------------------


def test_a_manager_switches_an_option_off_and_on(kiosk, manager, combo_menu):
    m = combo_menu
    response = manager.patch(f"/api/v1/options/{m.bacon.pk}/", {"active": False}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "id": m.bacon.pk,
        "product": m.burger.pk,
        "group": "Adicionais",
        "name": "Bacon",
        "price": "4.00",
        "product_id": None,
        "active": False,
        "available": False,
    }
    refused = place(kiosk, [{"product_id": m.burger.pk, "quantity": 1, "options": [{"option_id": m.bacon.pk}]}])
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_options")

    back = manager.patch(f"/api/v1/options/{m.bacon.pk}/", {"active": True, "price": "4.50"}, format="json")
    assert (back.json()["active"], back.json()["price"]) == (True, "4.50")
    order = place(kiosk, [{"product_id": m.burger.pk, "quantity": 1, "options": [{"option_id": m.bacon.pk}]}])
    assert order.json()["total"] == "30.40"
    assert manager.get(f"/api/v1/options/{m.bacon.pk}/").json()["price"] == "4.50"


def test_a_product_switched_off_greys_out_its_combo_choice_and_refuses_it(kiosk, manager, combo_menu):
    m = combo_menu
    assert manager.patch(f"/api/v1/products/{m.juice.pk}/", {"active": False}, format="json").status_code == 200
    combo = kiosk.get(f"/api/v1/products/{m.combo.pk}/").json()
    assert [(o["name"], o["available"]) for o in combo["option_groups"][2]["options"]] == [
        ("Refrigerante", True),
        ("Suco", False),
    ]
    refused = place(kiosk, [combo_item(m)])
    assert (refused.status_code, refused.json()["code"], refused.json()["group"]) == (400, "invalid_options", "Bebida")


@pytest.mark.parametrize(
    "body",
    [{"active": "no"}, {"active": None}, {"price": "-1.00"}, {"price": 4.5}, {"price": "1.999"}, {"name": "Bacon!"}],
)
def test_bad_option_changes_are_400_and_change_nothing(manager, combo_menu, body):
    response = manager.patch(f"/api/v1/options/{combo_menu.bacon.pk}/", body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    bacon = Option.objects.get(pk=combo_menu.bacon.pk)
    assert (bacon.active, bacon.price, bacon.name) == (True, D("4.00"), "Bacon")


def test_only_managers_switch_options(kiosk, kitchen, manager, combo_menu):
    for client in (kiosk, kitchen):
        response = client.patch(f"/api/v1/options/{combo_menu.bacon.pk}/", {"active": False}, format="json")
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert Option.objects.get(pk=combo_menu.bacon.pk).active
    assert manager.patch("/api/v1/options/999999/", {"active": False}, format="json").status_code == 404


# --- ETag -----------------------------------------------------------------------------------------


def test_the_menu_answers_304_until_something_on_it_changes(kiosk, manager, combo_menu):
    m = combo_menu
    first = kiosk.get("/api/v1/products/")
    etag = first["ETag"]
    assert etag.startswith('"') and first["Cache-Control"] == "private, no-cache" and first["Last-Modified"]

    again = kiosk.get("/api/v1/products/", HTTP_IF_NONE_MATCH=etag)
    assert (again.status_code, again.content) == (304, b"")
    assert again["ETag"] == etag
    # Weak and listed forms match too; another tag does not.
    assert kiosk.get("/api/v1/products/", HTTP_IF_NONE_MATCH=f'"x", W/{etag}').status_code == 304
    assert kiosk.get("/api/v1/products/", HTTP_IF_NONE_MATCH='"something-else"').status_code == 200

    def changes_the_menu(change):
        nonlocal etag
        change()
        response = kiosk.get("/api/v1/products/", HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 200 and response["ETag"] != etag
        etag = response["ETag"]
        return response.json()

    changes_the_menu(lambda: manager.patch(f"/api/v1/options/{m.cebola.pk}/", {"active": False}, format="json"))
    changes_the_menu(lambda: manager.patch(f"/api/v1/products/{m.burger.pk}/", {"price": "26.90"}, format="json"))
    # An order takes the last juices: the kiosk's next read no longer offers them.
    products = changes_the_menu(lambda: place(kiosk, [{"product_id": m.juice.pk, "quantity": 3}]))
    assert "Suco" not in [p["name"] for p in products]
    changes_the_menu(lambda: m.burger.suggestions.add(m.soda))

    # A category's new name is news for the categories, not for the products (they name it by slug).
    categories_tag = kiosk.get("/api/v1/categories/")["ETag"]
    Category.objects.filter(pk=m.combo.category_id).update(name="Combos do dia")
    assert kiosk.get("/api/v1/categories/", HTTP_IF_NONE_MATCH=categories_tag).status_code == 200
    assert kiosk.get("/api/v1/products/", HTTP_IF_NONE_MATCH=etag).status_code == 304

    # The rendered menu is cached per state of the menu: what the admin saves or deletes shows at once too.
    category = Category.objects.get(pk=m.combo.category_id)
    category.slug = "combos-do-dia"
    products = changes_the_menu(category.save)
    assert {p["category"] for p in products if p["id"] == m.combo.pk} == {"combos-do-dia"}
    products = changes_the_menu(lambda: Option.objects.filter(pk=m.cebola.pk).delete())
    assert "Cebola" not in {o["name"] for p in products for g in p["option_groups"] for o in g["options"]}
    # A cancelled order puts the juices back on the menu.
    juices = Order.objects.filter(items__product=m.juice).get()
    products = changes_the_menu(lambda: kiosk.post(f"/api/v1/orders/{juices.pk}/cancel/"))
    assert "Suco" in [p["name"] for p in products]


def test_each_role_and_filter_has_its_own_etag(kiosk, manager, combo_menu):
    kiosk_tag = kiosk.get("/api/v1/products/")["ETag"]
    manager_tag = manager.get("/api/v1/products/")["ETag"]
    assert kiosk_tag != manager_tag  # the manager also sees the inactive pie
    assert manager.get("/api/v1/products/", HTTP_IF_NONE_MATCH=kiosk_tag).status_code == 200
    category_tag = kiosk.get("/api/v1/products/?category=combos")["ETag"]
    assert category_tag != kiosk_tag
    assert kiosk.get("/api/v1/products/?category=combos", HTTP_IF_NONE_MATCH=category_tag).status_code == 304


def test_categories_and_one_product_answer_304_too(kiosk, combo_menu):
    for path in ("/api/v1/categories/", f"/api/v1/products/{combo_menu.combo.pk}/"):
        first = kiosk.get(path)
        assert first.status_code == 200 and first["ETag"]
        assert kiosk.get(path, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304


def test_a_304_needs_a_login_like_the_menu(combo_menu, kiosk):
    etag = kiosk.get("/api/v1/products/")["ETag"]
    response = client_for(None).get("/api/v1/products/", HTTP_IF_NONE_MATCH=etag)
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


# --- Sales report ---------------------------------------------------------------------------------


def test_the_sales_report_counts_combos_and_their_parts_apart(terminal, combo_menu):
    m = combo_menu
    combo = ItemRequest(
        m.combo.pk,
        2,
        options=(OptionRequest(m.combo_burger.pk), OptionRequest(m.combo_fries.pk), OptionRequest(m.combo_soda.pk)),
    )
    sold = order_place(terminal=terminal, items=[combo, ItemRequest(m.burger.pk, 1)])
    order_mark_paid(order_id=sold.pk)
    order_place(terminal=terminal, items=[combo])  # never paid: not a sale
    today = timezone.localdate()
    rows = {row["product_name"]: row for row in reports.sales_by_product(start=today, end=today)}
    assert rows == {
        "Combo X-Burger": {
            "product_id": m.combo.pk,
            "product_name": "Combo X-Burger",
            "quantity": 2,
            "gross": D("83.80"),
            "in_combos": 0,
        },
        "X-Burger": {
            "product_id": m.burger.pk,
            "product_name": "X-Burger",
            "quantity": 1,
            "gross": D("25.90"),
            "in_combos": 2,
        },
        "Batata grande": {
            "product_id": m.fries.pk,
            "product_name": "Batata grande",
            "quantity": 0,
            "gross": D("0.00"),
            "in_combos": 2,
        },
        "Refrigerante": {
            "product_id": m.soda.pk,
            "product_name": "Refrigerante",
            "quantity": 0,
            "gross": D("0.00"),
            "in_combos": 2,
        },
    }
    csv_rows = list(reports.sales_csv_rows(start=today, end=today, section="products"))
    assert csv_rows[0] == ["product_id", "product_name", "quantity", "gross", "in_combos"]
    assert [m.fries.pk, "Batata grande", 0, D("0.00"), 2] in csv_rows


# --- Admin ----------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, manager_user, migration_data):
    client.force_login(manager_user)
    return client


def test_the_admin_shows_groups_on_products_and_options_on_groups(admin_client, combo_menu):
    m = combo_menu
    page = admin_client.get(f"/admin/orders/product/{m.burger.pk}/change/").content.decode()
    assert "Adicionais" in page and "Retirar" in page and "suggestions" in page
    page = admin_client.get(f"/admin/orders/optiongroup/{m.adicionais.pk}/change/").content.decode()
    assert "Bacon" in page and "Queijo extra" in page
    assert admin_client.get("/admin/orders/option/").status_code == 200
    assert admin_client.get("/admin/orders/product/?kind__exact=combo").status_code == 200


def test_the_admin_option_list_is_the_sold_out_switch(admin_client, kiosk, combo_menu):
    m = combo_menu
    options = list(Option.objects.order_by("pk"))
    form = {
        "form-TOTAL_FORMS": str(len(options)),
        "form-INITIAL_FORMS": str(len(options)),
        "_save": "Save",
    }
    for n, option in enumerate(options):
        form[f"form-{n}-id"] = str(option.pk)
        if option.active and option.pk != m.bacon.pk:
            form[f"form-{n}-active"] = "on"
    response = admin_client.post("/admin/orders/option/", form)
    assert response.status_code == 302
    assert not Option.objects.get(pk=m.bacon.pk).active
    burger = kiosk.get(f"/api/v1/products/{m.burger.pk}/").json()
    assert [(o["name"], o["available"]) for o in burger["option_groups"][0]["options"]] == [
        ("Bacon", False),
        ("Queijo extra", True),
    ]


def test_a_combo_slot_choice_must_name_an_item(combo_menu):
    from django.core.exceptions import ValidationError

    m = combo_menu
    slot = m.combo_soda.group
    for option, field in (
        (Option(group=slot, name="Nada"), "product"),  # a combo's choice names a product
        (Option(group=m.adicionais, name="Batata", product=m.fries), "product"),  # an item's option does not
        (Option(group=slot, name="Outro combo", product=m.combo), "product"),  # a part is not a combo
    ):
        with pytest.raises(ValidationError) as exc:
            option.full_clean()
        assert field in exc.value.message_dict


def test_an_order_in_the_admin_shows_what_was_chosen(admin_client, terminal, combo_menu):
    m = combo_menu
    order = order_place(
        terminal=terminal,
        items=[
            ItemRequest(
                m.combo.pk,
                1,
                options=(
                    OptionRequest(m.combo_burger.pk, options=(OptionRequest(m.cebola.pk),)),
                    OptionRequest(m.combo_fries.pk),
                    OptionRequest(m.combo_juice.pk),
                ),
            )
        ],
    )
    page = admin_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "Lanche: X-Burger [Retirar: Cebola]; Acompanhamento: Batata grande (+2.00); Bebida: Suco (+2.50)" in page


# --- Properties: exact money, and the rules, for any prices and quantities ------------------------

PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
cents = st.integers(min_value=0, max_value=99_999)  # an option's extra: 0.00 to 999.99


def money(amount: int) -> Decimal:
    return Decimal(amount).scaleb(-2)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_line_costs_exactly_its_prices_in_cents(terminal, data):
    """Whatever the prices and quantities: unit = price + each option x its quantity (a combo part's own
    options once per part), line = unit x quantity, total = the lines; exact to the cent, never rounded."""
    category = Category.objects.get_or_create(slug="prop", defaults={"name": "Prop"})[0]
    part_price, combo_price = data.draw(st.integers(1, 999_999)), data.draw(st.integers(1, 999_999))
    part = Product.objects.create(category=category, name="Part", price=money(part_price))
    part_group = OptionGroup.objects.create(product=part, name="Extras", max_choices=6)
    part_extras = [
        Option.objects.create(group=part_group, name=f"E{n}", price=money(c))
        for n, c in enumerate(data.draw(st.lists(cents, min_size=1, max_size=3)))
    ]
    combo = Product.objects.create(category=category, name="Combo", kind="combo", price=money(combo_price))
    slot = OptionGroup.objects.create(product=combo, name="Slot", min_choices=1, max_choices=3)
    slot_extra = data.draw(cents)
    choice = Option.objects.create(group=slot, name="Part", price=money(slot_extra), product=part)

    def picks(options):
        chosen = data.draw(st.lists(st.sampled_from(options), unique=True, max_size=len(options)))
        return [(option, data.draw(st.integers(1, 2))) for option in chosen]

    part_picks, per_combo = picks(part_extras), data.draw(st.integers(1, 3))
    item_picks = picks(part_extras)
    combo_quantity, item_quantity = data.draw(st.integers(1, 50)), data.draw(st.integers(1, 50))
    order = order_place(
        terminal=terminal,
        items=[
            ItemRequest(
                combo.pk,
                combo_quantity,
                options=(
                    OptionRequest(choice.pk, per_combo, options=tuple(OptionRequest(o.pk, q) for o, q in part_picks)),
                ),
            ),
            ItemRequest(part.pk, item_quantity, options=tuple(OptionRequest(o.pk, q) for o, q in item_picks)),
        ],
    )

    def extras(chosen):
        return sum(int(o.price * 100) * q for o, q in chosen)

    combo_unit = combo_price + per_combo * (slot_extra + extras(part_picks))
    item_unit = part_price + extras(item_picks)
    stored = Order.objects.get(pk=order.pk)
    lines = list(stored.items.order_by("pk"))
    assert [(line.unit_price, line.line_total) for line in lines] == [
        (money(combo_unit), money(combo_unit * combo_quantity)),
        (money(item_unit), money(item_unit * item_quantity)),
    ]
    assert stored.total == money(combo_unit * combo_quantity + item_unit * item_quantity)
    assert all(value.as_tuple().exponent == -2 for value in (stored.total, lines[0].unit_price))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_choice_is_accepted_exactly_when_every_group_keeps_its_range(terminal, data):
    category = Category.objects.get_or_create(slug="prop", defaults={"name": "Prop"})[0]
    product = Product.objects.create(category=category, name="Lanche", price=D("10.00"), stock=5)
    least = data.draw(st.integers(0, 3))
    group = OptionGroup.objects.create(
        product=product, name="Grupo", min_choices=least, max_choices=data.draw(st.integers(max(least, 1), 4))
    )
    options = [Option.objects.create(group=group, name=f"O{n}", price=D("1.00")) for n in range(3)]
    chosen = data.draw(st.lists(st.sampled_from(options), unique=True))
    quantities = [data.draw(st.integers(1, 3)) for _ in chosen]
    orders_before = Order.objects.count()
    request = ItemRequest(
        product.pk, 1, options=tuple(OptionRequest(o.pk, q) for o, q in zip(chosen, quantities, strict=True))
    )

    if group.min_choices <= sum(quantities) <= group.max_choices:
        order = order_place(terminal=terminal, items=[request])
        assert order.total == D("10.00") + sum(quantities)
        assert stock(product) == 4
    else:
        with pytest.raises(InvalidOptions) as refused:
            order_place(terminal=terminal, items=[request])
        assert refused.value.extra["group"] == "Grupo"
        assert (Order.objects.count(), stock(product)) == (orders_before, 5)


# --- The demo menu --------------------------------------------------------------------------------


def test_the_demo_menu_sells_a_combo_with_options(settings):
    from django.core.management import call_command

    settings.DEBUG = True
    call_command("seed_demo")
    call_command("seed_demo")  # again: nothing doubles
    assert Product.objects.filter(kind="combo").count() == 1
    assert OptionGroup.objects.count() == 11 and Option.objects.count() == 23

    kiosk = client_for(Terminal.objects.get(external_pos_id="KIOSK001").user)
    menu = {p["name"]: p for p in kiosk.get("/api/v1/products/").json()}
    assert next(iter(menu)) == "Combo X-Burger"
    assert menu["X-Burger"]["suggestions"] == sorted(
        [menu["Refrigerante lata"]["id"], menu["Batata frita média"]["id"]]
    )

    def option(product, group, name):
        (found,) = [
            o["id"]
            for g in menu[product]["option_groups"]
            if g["name"] == group
            for o in g["options"]
            if o["name"] == name
        ]
        return found

    response = place(
        kiosk,
        [
            {
                "product_id": menu["Combo X-Burger"]["id"],
                "quantity": 1,
                "options": [
                    {
                        "option_id": option("Combo X-Burger", "Lanche", "X-Burger"),
                        "options": [
                            {"option_id": option("X-Burger", "Retirar", "Cebola")},
                            {"option_id": option("X-Burger", "Adicionais", "Bacon")},
                        ],
                    },
                    {"option_id": option("Combo X-Burger", "Acompanhamento", "Batata grande")},
                    {"option_id": option("Combo X-Burger", "Bebida", "Suco de laranja")},
                ],
            },
            {
                "product_id": menu["X-Bacon"]["id"],
                "quantity": 1,
                "options": [{"option_id": option("X-Bacon", "Ponto da carne", "Bem passado")}],
            },
        ],
        dining="takeaway",
    )
    assert response.status_code == 201, response.json()
    # Combo 39.90 + bacon 4.00 + batata grande 2.00 + suco 2.50 = 48.40; X-Bacon 31.50.
    assert [i["line_total"] for i in response.json()["items"]] == ["48.40", "31.50"]
    assert response.json()["total"] == "79.90"
    assert Product.objects.get(name="Suco de laranja").stock == 14
