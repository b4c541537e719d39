"""The orders API as a kiosk drives it: place, read, cancel; and everything a kiosk must not be able to do."""

import uuid

import pytest

from orders.models import Customer, Order, Product
from orders.services import order_mark_paid
from tests.conftest import client_for, new_key, place

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def test_kiosk_places_an_order_and_gets_money_as_strings(kiosk, menu):
    response = place(
        kiosk,
        [
            {"product_id": menu["burger"].pk, "quantity": 2, "note": "sem cebola"},
            {"product_id": menu["juice"].pk, "quantity": 1},
        ],
        customer_cpf="529.982.247-25",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "awaiting_payment"
    assert body["total"] == "61.70"
    assert body["number"] == 1
    assert [(i["name"], i["unit_price"], i["quantity"], i["line_total"]) for i in body["items"]] == [
        ("X-Burger", "25.90", 2, "51.80"),
        ("Suco", "9.90", 1, "9.90"),
    ]
    assert body["items"][0]["note"] == "sem cebola"
    assert body["customer"]["cpf"] == "***.982.247-**"
    assert "52998224725" not in response.content.decode()
    assert response["Location"] == f"/api/v1/orders/{body['id']}/"

    detail = kiosk.get(f"/api/v1/orders/{body['id']}/")
    assert detail.status_code == 200
    assert detail.json() == body


def test_client_cannot_set_prices_or_totals(kiosk, menu):
    response = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1, "unit_price": "0.01"}], total="0.01")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"total"}
    response = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1, "unit_price": "0.01"}])
    assert response.status_code == 400
    assert response.json()["errors"] == {"items": [{"unit_price": ["Unknown field."]}]}
    assert not Order.objects.exists()


BAD_BODIES = [
    ({"items": []}, "items"),
    ({}, "items"),
    ({"items": "burger"}, "items"),
    ({"items": [{"product_id": 1}]}, "items"),
    ({"items": [{"product_id": "PID", "quantity": 1}]}, "items"),
    ({"items": [{"product_id": None, "quantity": 1}]}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": 0}]}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": -1}]}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": 51}]}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": 1.5}]}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": "2"}]}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": True}]}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": 10**30}]}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": 1, "note": "x" * 141}]}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": 1}] * 51}, "items"),
    ({"items": [{"product_id": "BURGER", "quantity": 1}], "customer_cpf": "123.456.789-00"}, "customer_cpf"),
    ({"items": [{"product_id": "BURGER", "quantity": 1}], "customer_cpf": "abc"}, "customer_cpf"),
    ({"items": [{"product_id": "BURGER", "quantity": 1}], "customer_cpf": "111.111.111-11"}, "customer_cpf"),
    ({"items": [{"product_id": "BURGER", "quantity": 1}], "coupon": "FREE"}, "coupon"),
    ([{"product_id": "BURGER", "quantity": 1}], "non_field_errors"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_order_bodies_are_400_problems_and_change_nothing(kiosk, menu, body, field):
    def resolve(value):
        if value == "BURGER":
            return menu["burger"].pk
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    response = kiosk.post("/api/v1/orders/", resolve(body), format="json", HTTP_IDEMPOTENCY_KEY=new_key())
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["status"] == 400
    assert field in problem["errors"]
    assert not Order.objects.exists()
    assert not Customer.objects.exists()


def test_malformed_json_and_wrong_media_type(kiosk, menu):
    response = kiosk.post("/api/v1/orders/", "{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1")
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")
    response = kiosk.post(
        "/api/v1/orders/", "items=1", content_type="application/x-www-form-urlencoded", HTTP_IDEMPOTENCY_KEY="k2"
    )
    assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type")
    assert not Order.objects.exists()


def test_huge_body_is_413(kiosk, menu):
    huge = '{"items": [], "pad": "' + "x" * 70_000 + '"}'
    response = kiosk.post("/api/v1/orders/", huge, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 413
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "payload_too_large"


def test_unknown_inactive_and_sold_out_products(kiosk, menu):
    response = place(kiosk, [{"product_id": 987654, "quantity": 1}])
    assert (response.status_code, response.json()["code"]) == (400, "unknown_product")
    response = place(kiosk, [{"product_id": menu["pie"].pk, "quantity": 1}])
    assert (response.status_code, response.json()["code"]) == (409, "product_unavailable")
    response = place(kiosk, [{"product_id": menu["juice"].pk, "quantity": 4}])
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "out_of_stock"
    assert problem["product_name"] == "Suco"
    assert "Suco" in problem["detail"]
    assert not Order.objects.exists()
    assert Product.objects.get(pk=menu["juice"].pk).stock == 3


def test_a_kiosk_sees_and_cancels_only_its_own_terminals_orders(kiosk, other_terminal, menu):
    mine = place(kiosk, [{"product_id": menu["juice"].pk, "quantity": 2}]).json()
    other = client_for(other_terminal.user)
    theirs = place(other, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()

    assert kiosk.get(f"/api/v1/orders/{theirs['id']}/").status_code == 404
    response = kiosk.post(f"/api/v1/orders/{theirs['id']}/cancel/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert Order.objects.get(pk=theirs["id"]).status == "awaiting_payment"
    assert [o["id"] for o in kiosk.get("/api/v1/orders/").json()["results"]] == [mine["id"]]

    response = kiosk.post(f"/api/v1/orders/{mine['id']}/cancel/")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_reason"]) == ("cancelled", "customer")
    assert Product.objects.get(pk=menu["juice"].pk).stock == 3


def test_staff_see_all_orders_and_cancel_as_staff(kiosk, kitchen, manager, menu):
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    assert kitchen.get(f"/api/v1/orders/{order['id']}/").status_code == 200
    listed = manager.get("/api/v1/orders/?status=awaiting_payment").json()
    assert listed["count"] == 1
    response = manager.post(f"/api/v1/orders/{order['id']}/cancel/")
    assert response.json()["cancel_reason"] == "staff"


def test_cancelling_a_paid_order_is_a_409_and_changes_nothing(kiosk, menu):
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    order_mark_paid(order_id=order["id"])
    response = kiosk.post(f"/api/v1/orders/{order['id']}/cancel/")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert Order.objects.get(pk=order["id"]).status == "received"


def test_order_lookups_with_bad_ids_and_filters(kiosk, manager):
    assert kiosk.get(f"/api/v1/orders/{uuid.uuid4()}/").status_code == 404
    response = kiosk.get("/api/v1/orders/not-a-uuid/")
    assert (response.status_code, response["Content-Type"]) == (404, PROBLEM)
    response = manager.get("/api/v1/orders/?status=bogus")
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")


def test_only_kiosks_linked_to_an_active_terminal_place_orders(db, menu, manager, kitchen, terminal):
    body = {"items": [{"product_id": menu["burger"].pk, "quantity": 1}]}
    for client in (manager, kitchen):
        response = client.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")

    terminal.active = False
    terminal.save()
    response = client_for(terminal.user).post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
    assert (response.status_code, response.json()["code"]) == (403, "terminal_inactive")
    assert not Order.objects.exists()


def test_anonymous_callers_get_401_problems(db):
    response = client_for(None).post("/api/v1/orders/", {}, format="json")
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "not_authenticated"


def test_unknown_api_path_and_wrong_method_are_problems(kiosk):
    response = kiosk.get("/api/v1/nothing-here/")
    assert (response.status_code, response["Content-Type"]) == (404, PROBLEM)
    response = kiosk.delete("/api/v1/orders/")
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")


def test_trailing_slash_is_optional(kiosk, menu):
    response = kiosk.post(
        "/api/v1/orders",
        {"items": [{"product_id": menu["burger"].pk, "quantity": 1}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )
    assert response.status_code == 201
