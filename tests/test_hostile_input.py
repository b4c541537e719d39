"""Input a hostile or buggy client sends: each once crashed or slipped through; now a clear 4xx, no change."""

from decimal import Decimal

import pytest
from django.test import Client

from orders.models import Customer, Order, Product
from payments.reports import ReportRangeError, parse_range
from tests.conftest import new_key, place

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def _post_raw(client, path, body, content_type="application/json", **headers):
    return client.post(path, body, content_type=content_type, HTTP_IDEMPOTENCY_KEY=new_key(), **headers)


@pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/customers/", "/api/v1/products/"])
def test_deeply_nested_json_is_a_parse_error(manager, kiosk, path, menu):
    client = manager if path == "/api/v1/products/" else kiosk
    response = _post_raw(client, path, "[" * 30_000 + "]" * 30_000)
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_deeply_nested_json_at_login_is_a_parse_error(db):
    response = Client().post("/api/v1/auth/token/", "[" * 30_000 + "]" * 30_000, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")


def test_a_lone_surrogate_in_a_field_name_is_reported_not_crashed_on(kiosk, menu):
    body = '{"items": [{"product_id": %d, "quantity": 1}], "\\ud800": 1}' % menu["burger"].pk  # noqa: UP031
    response = _post_raw(kiosk, "/api/v1/orders/", body)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert not Order.objects.exists()


@pytest.mark.parametrize("charset", ["rot13", "zlib", "bz2"])
def test_exotic_charsets_are_415(kiosk, menu, charset):
    body = '{"items": [{"product_id": %d, "quantity": 1}]}' % menu["burger"].pk  # noqa: UP031
    response = _post_raw(kiosk, "/api/v1/orders/", body, content_type=f"application/json; charset={charset}")
    assert response.status_code in (400, 415)
    assert response["Content-Type"] == PROBLEM
    assert not Order.objects.exists()


def test_absurd_pagination_is_clamped(manager, kiosk, menu):
    place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}])
    for query in ("limit=99999999999999999999", "offset=99999999999999999999"):
        response = manager.get(f"/api/v1/orders/?{query}")
        assert response.status_code == 200, query
    assert len(manager.get("/api/v1/orders/?limit=1000000").json()["results"]) == 1


def test_pagination_that_is_no_count_is_refused(manager, kiosk, menu):
    """Found by schemathesis: `limit=-1` or `offset=abc` were silently the defaults; now a 400 like any other bad
    parameter (the schema says limit >= 1, offset >= 0)."""
    place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}])
    for query in (
        *("limit=-1", "limit=0", "limit=2.5", "offset=abc", "offset=-3", "limit=1e3"),
        *(
            "limit=5.0",
            "limit=%2B5",
            "limit=%205",
            "offset=%D9%A5",
            "limit=%EF%BC%95",
        ),  # 5.0, +5, " 5", Arabic/fullwidth 5
    ):
        response = manager.get(f"/api/v1/orders/?{query}")
        assert (response.status_code, response["Content-Type"]) == (400, PROBLEM), query
        assert response.json()["code"] == "validation_error"
        assert list(response.json()["errors"]) == [query.split("=")[0]], query
    assert manager.get("/api/v1/orders/?limit=1&offset=0").json()["count"] == 1


def test_an_order_too_large_for_the_books_is_refused(kiosk, manager, menu):
    Product.objects.filter(pk=menu["burger"].pk).update(price=Decimal("99999999.99"))
    response = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 2}])
    assert (response.status_code, response.json()["code"]) == (422, "order_total_too_large")
    assert not Order.objects.exists()


def test_non_numeric_content_length_is_400(kiosk):
    response = kiosk.generic("POST", "/api/v1/orders/", b"{}", content_type="application/json", CONTENT_LENGTH="abc")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM


def test_unsafe_methods_on_unknown_api_paths_are_404_problems_not_csrf_pages(db):
    client = Client(enforce_csrf_checks=True)
    for method in ("post", "put", "delete", "patch"):
        response = getattr(client, method)("/api/v1/nope/", "{}", content_type="application/json")
        assert (response.status_code, response["Content-Type"]) == (404, PROBLEM), method


def test_problem_json_is_acceptable(kiosk):
    response = kiosk.get("/api/v1/customers/?cpf=abc", HTTP_ACCEPT="application/problem+json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "item",
    [{"note": 123}, {"note": None}, {"note": ["a"]}],
)
def test_note_must_be_text(kiosk, menu, item):
    response = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1, **item}])
    assert response.status_code == 400
    assert not Order.objects.exists()


def test_cpf_must_be_a_string(kiosk, menu):
    response = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}], customer_cpf=52998224725)
    assert response.status_code == 400
    response = kiosk.post("/api/v1/customers/", {"cpf": 52998224725}, format="json")
    assert response.status_code == 400
    assert not Customer.objects.exists()


@pytest.mark.parametrize(
    "change",
    [
        {"price": 0.1},
        {"price": 12},
        {"price": "\uff15"},
        {"price": " 1.00"},
        {"active": "yes"},
        {"active": 1},
        {"name": 5},
    ],
)
def test_product_fields_take_json_types_at_their_word(manager, menu, change):
    response = manager.patch(f"/api/v1/products/{menu['burger'].pk}/", change, format="json")
    assert response.status_code == 400, change
    burger = Product.objects.get(pk=menu["burger"].pk)
    assert (burger.price, burger.active, burger.name) == (Decimal("25.90"), True, "X-Burger")


def test_a_retry_without_the_trailing_slash_is_the_same_request(kiosk, menu):
    body = {"items": [{"product_id": menu["burger"].pk, "quantity": 1}]}
    first = kiosk.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    second = kiosk.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert second["Idempotent-Replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]


def test_email_masking_hides_a_quoted_local_part():
    from orders.cpf import mask_email

    assert mask_email('"maria.secret@corp"@example.com') == '"***@example.com'


@pytest.mark.parametrize(
    "day", ["20261206xx", "2026-W49-1", "2026-12-6", "2026-12-06T00", "2026-02-30", "\uff12\uff10\uff12\uff16-12-06"]
)
def test_a_business_date_that_is_not_yyyy_mm_dd_is_refused(manager, day):
    """Python's fromisoformat takes week dates and compact forms; ?business_date= takes YYYY-MM-DD only, like
    the sales report's range."""
    response = manager.get("/api/v1/orders/", {"business_date": day})
    assert (response.status_code, response.json()["code"]) == (400, "validation_error"), day
    with pytest.raises(ReportRangeError):
        parse_range(start=day, end="2026-12-06")
    assert manager.get("/api/v1/orders/", {"business_date": "2026-12-06"}).status_code == 200


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/auth/token/", {"username": 5, "password": "x"}),
        ("/api/v1/auth/token/", {"username": "boss", "password": ["x"]}),
        ("/api/v1/auth/token/", {"username": "boss", "password": "x", "store": 1}),
        ("/api/v1/auth/token/refresh/", {"refresh": 5}),
        ("/api/v1/auth/token/refresh/", {"refresh": "x", "access": "y"}),
        ("/api/v1/auth/logout/", {"refresh": "x", "everywhere": True}),
    ],
)
def test_login_refresh_and_logout_take_json_at_its_word(db, path, body):
    """Like every other endpoint: an unknown field or a number where a string belongs is a 400 naming the field,
    not silently ignored and not a 401 'wrong password'."""
    response = Client().post(path, body, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "validation_error"), response.json()
