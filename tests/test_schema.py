"""The OpenAPI schema (/api/schema/, kiosk/openapi.py) says what the API does: lists as pages, every error as
problem+json with its codes, the headers operations read, values as they come back. These tests keep it so;
tests/test_schemathesis.py checks it against the running API."""

import json
import re

import pytest
import requests
import schemathesis
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from orders.models import Product
from tests.conftest import new_key, place

PROBLEM_REF = "#/components/schemas/Problem"
METHODS = {"get", "post", "put", "patch", "delete"}


def generate() -> dict:
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


@pytest.fixture(scope="module")
def openapi():
    """The schema as /api/schema/ serves it, as plain JSON."""
    return generate()


def operations(openapi):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def problem_codes(operation, status: int) -> list[str]:
    """The `code` values a problem response documents (and checks that it is one)."""
    response = operation["responses"][str(status)]
    assert list(response["content"]) == ["application/problem+json"]
    base, specific = response["content"]["application/problem+json"]["schema"]["allOf"]
    assert base == {"$ref": PROBLEM_REF}
    assert specific["properties"]["status"]["enum"] == [status]
    return specific["properties"]["code"]["enum"]


def parameter(openapi, operation, name):
    for found in operation.get("parameters", []):
        if "$ref" in found:
            found = openapi["components"]["parameters"][found["$ref"].rsplit("/", 1)[1]]
        if found["name"] == name:
            return found
    return None


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/orders/" in (tmp_path / "schema.yaml").read_text()


def test_the_schema_is_the_same_every_time():
    """Every $ref points at a component, also in the second schema a process makes (a serializer's extra rules
    were once rewritten in place by the first, leaving the second with a $ref to a component it lacked)."""
    first, again = generate(), generate()
    assert again == first
    text = json.dumps(again)
    for ref in set(re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', text)):
        assert ref[1] in again["components"][ref[0]], ref


def test_the_orders_list_is_a_page(openapi):
    listing = openapi["paths"]["/api/v1/orders/"]["get"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PaginatedOrderList"
    }
    page = openapi["components"]["schemas"]["PaginatedOrderList"]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/Order"}
    assert {"limit", "offset"} <= {p["name"] for p in listing["parameters"] if "name" in p}


def test_every_error_is_problem_json_with_its_codes(openapi):
    problem = openapi["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "code"}
    for name, operation in operations(openapi):
        errors = [int(status) for status in operation["responses"] if int(status) >= 400]
        assert errors, name
        for status in errors:
            assert problem_codes(operation, status), f"{name} {status}"


def test_what_every_operation_of_a_kind_can_answer(openapi):
    for name, operation in operations(openapi):
        method = name.split()[0].lower()
        secured = operation.get("security") and {} not in operation["security"]
        if secured:
            assert {"not_authenticated", "token_not_valid"} <= set(problem_codes(operation, 401)), name
            assert "permission_denied" in problem_codes(operation, 403), name
        if "{" in name:
            assert "not_found" in problem_codes(operation, 404), name
        if "requestBody" in operation:
            assert {"validation_error", "malformed_request"} <= set(problem_codes(operation, 400)), name
            assert problem_codes(operation, 415) == ["unsupported_media_type"], name
        if method != "get":
            assert problem_codes(operation, 413) == ["payload_too_large"], name
            assert "busy_retry" in problem_codes(operation, 503), name
        assert "database_unavailable" in problem_codes(operation, 503), name
        assert "Retry-After" in operation["responses"]["503"]["headers"], name


@pytest.mark.parametrize(
    ("operation", "status", "codes"),
    [
        ("POST /api/v1/orders/", 400, {"unknown_product", "invalid_options", "invalid_dining", "validation_error"}),
        ("POST /api/v1/orders/", 409, {"out_of_stock", "product_unavailable", "idempotency_request_in_progress"}),
        ("POST /api/v1/orders/", 422, {"order_total_too_large", "idempotency_key_reused"}),
        ("POST /api/v1/orders/", 403, {"terminal_inactive", "permission_denied"}),
        ("POST /api/v1/orders/{order_id}/checkout/", 409, {"order_not_payable", "terminal_not_ready"}),
        ("POST /api/v1/orders/{order_id}/checkout/", 503, {"payment_provider_unavailable", "busy_retry"}),
        ("POST /api/v1/orders/{order_id}/counter-payment/", 422, {"counter_amount_mismatch"}),
        ("POST /api/v1/payments/{payment_id}/refunds/", 400, {"refund_amount_invalid", "idempotency_key_invalid"}),
        ("POST /api/v1/payments/{payment_id}/refunds/", 409, {"refund_not_allowed"}),
        ("GET /api/v1/orders/{order_id}/payment/", 404, {"no_payment", "not_found"}),
        ("GET /api/v1/kitchen/orders/", 403, {"store_not_assigned"}),
        ("GET /api/v1/pickup-board/", 400, {"store_required"}),
        ("GET /api/v1/pickup-board/", 429, {"throttled"}),
        ("GET /api/v1/customers/", 429, {"throttled"}),
        ("POST /api/v1/auth/token/", 401, {"authentication_failed"}),
        ("POST /api/v1/auth/token/", 429, {"too_many_failed_logins"}),
    ],
)
def test_an_operation_lists_its_own_problems(openapi, operation, status, codes):
    method, path = operation.split()
    assert codes <= set(problem_codes(openapi["paths"][path][method.lower()], status))


def test_headers_operations_read(openapi):
    idempotency = {
        "POST /api/v1/orders/": True,
        "POST /api/v1/orders/{order_id}/checkout/": True,
        "POST /api/v1/orders/{order_id}/counter-payment/": True,
        "POST /api/v1/payments/{payment_id}/refunds/": True,
        "POST /api/v1/customers/": False,
        "POST /api/v1/products/": False,
        "POST /api/v1/webhook-endpoints/": False,
    }
    conditional = {
        "GET /api/v1/categories/",
        "GET /api/v1/products/",
        "GET /api/v1/products/{product_id}/",
        "GET /api/v1/kitchen/orders/",
        "GET /api/v1/pickup-board/",
    }
    for name, operation in operations(openapi):
        request_id = parameter(openapi, operation, "X-Request-ID")
        assert request_id and request_id["in"] == "header", name
        for response in operation["responses"].values():
            assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/XRequestID"}, name
        key = parameter(openapi, operation, "Idempotency-Key")
        if name in idempotency:
            assert key["in"] == "header" and key.get("required", False) is idempotency[name], name
            assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255), name
            assert re.fullmatch(key["schema"]["pattern"], "a" * 255) and not re.fullmatch(
                key["schema"]["pattern"], "a b"
            )
        else:
            assert key is None, name
        if name in conditional:
            assert parameter(openapi, operation, "If-None-Match")["in"] == "header", name
            assert "ETag" in operation["responses"]["200"]["headers"], name
            assert "ETag" in operation["responses"]["304"]["headers"], name
        else:
            assert parameter(openapi, operation, "If-None-Match") is None, name


def test_login_refresh_and_logout_say_what_they_answer(openapi):
    """simplejwt's views behind our strict serializers: a client generated from the schema reads the tokens."""
    schemas = openapi["components"]["schemas"]
    login = openapi["paths"]["/api/v1/auth/token/"]["post"]["responses"]["200"]["content"]["application/json"]
    assert login["schema"]["$ref"].endswith("/TokenObtainPair")
    for name in ("TokenObtainPair", "Refresh"):
        assert {"access", "refresh"} <= set(schemas[name]["properties"]), name
    assert set(schemas["TokenObtainPairRequest"]["properties"]) == {"username", "password"}
    assert schemas["TokenBlacklistRequest"]["additionalProperties"] is False


def test_request_bodies_say_what_is_refused(openapi):
    schemas = openapi["components"]["schemas"]
    order = schemas["OrderCreateRequest"]
    assert order["additionalProperties"] is False  # unknown fields are refused, not ignored
    assert order["properties"]["items"]["minItems"] == 1
    assert any(rule.get("required") == ["customer_cpf"] for rule in order["anyOf"])  # "CPF na nota" needs a CPF
    amount = schemas["CounterPaymentRequestRequest"]["properties"]["amount"]["pattern"]
    assert [bool(re.fullmatch(amount, v)) for v in ("25.90", "0.01", "12345678", "", "-1.00", "0.00", "1e3")] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    price = schemas["PatchedOptionWriteRequest"]["properties"]["price"]["pattern"]  # an option may be free
    assert re.fullmatch(price, "0.00") and not re.fullmatch(price, "-0.50")
    cpf = schemas["CustomerIdentifyRequest"]["properties"]["cpf"]
    assert cpf["format"] == "cpf" and re.fullmatch(cpf["pattern"], "123.456.789-09")
    events = schemas["WebhookEndpointWriteRequest"]["properties"]["events"]["anyOf"]
    assert ["*"] in [branch["items"]["enum"] for branch in events]
    assert all(branch["maxItems"] == 100 for branch in events)  # ["*", "*"] is taken: repeats are dropped
    # Text trimmed and not blank: " " is refused like "" (found by schemathesis: a login, a product's name).
    for name in (
        schemas["TokenObtainPairRequest"]["properties"]["username"],
        schemas["ProductWriteRequest"]["properties"]["name"],
    ):
        assert [bool(re.search(name["pattern"], v)) for v in ("X-Burger", " ", "\f", "\x85")] == [
            True,
            False,
            False,
            False,
        ]
    assert "pattern" not in schemas["ProductWriteRequest"]["properties"]["description"]  # may be blank


# --- Real answers against the schema (schemathesis' validator) -------------------------------------


@pytest.fixture(scope="module")
def documented(openapi):
    return schemathesis.openapi.from_dict(openapi)


def conforms(documented, method: str, path: str, template: str, response) -> None:
    """A Django test response checked against the schema: status, content type, headers and body. Raises an
    AssertionError saying what differs when it does not conform."""
    answer = schemathesis.Response(
        status_code=response.status_code,
        headers={name: [value] for name, value in response.headers.items()},
        content=response.content,
        request=requests.Request(method, f"http://testserver{path}").prepare(),
        elapsed=0.0,
        verify=True,
    )
    documented[template][method].validate_response(answer)


def test_a_page_of_orders_conforms(documented, kiosk, order):
    response = kiosk.get("/api/v1/orders/")
    assert response.json()["count"] == 1
    conforms(documented, "GET", "/api/v1/orders/", "/api/v1/orders/", response)


def test_a_checkout_and_a_refund_conform(documented, kiosk, order, mercadopago, manager):
    path = f"/api/v1/orders/{order['id']}/checkout/"
    checkout = kiosk.post(path, HTTP_IDEMPOTENCY_KEY=new_key())
    assert checkout.status_code == 201
    conforms(documented, "POST", path, "/api/v1/orders/{order_id}/checkout/", checkout)
    mercadopago.pay(checkout.json()["payment"]["provider_order_id"])
    mercadopago.deliver()
    path = f"/api/v1/payments/{checkout.json()['payment']['id']}/refunds/"
    refund = manager.post(path, {"amount": "10.00", "reason": "cold fries"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert refund.status_code == 202
    conforms(documented, "POST", path, "/api/v1/payments/{payment_id}/refunds/", refund)


def test_a_product_without_a_picture_conforms(documented, kiosk, menu):
    assert Product.objects.get(pk=menu["burger"].pk).image_url == ""
    path = f"/api/v1/products/{menu['burger'].pk}/"
    response = kiosk.get(path)
    assert response.json()["image_url"] == ""
    conforms(documented, "GET", path, "/api/v1/products/{product_id}/", response)


def test_problems_conform(documented, kiosk, menu):
    menu["juice"].stock = 0
    menu["juice"].save()
    refused = place(kiosk, [{"product_id": menu["juice"].pk, "quantity": 1}])
    assert refused.status_code == 409 and refused.json()["code"] == "out_of_stock"
    conforms(documented, "POST", "/api/v1/orders/", "/api/v1/orders/", refused)
    kiosk.force_authenticate(None)
    anonymous = kiosk.get("/api/v1/orders/")
    assert anonymous.status_code == 401
    conforms(documented, "GET", "/api/v1/orders/", "/api/v1/orders/", anonymous)


def test_an_undocumented_answer_does_not_conform(documented, kiosk, order):
    """The check above can fail: a list of orders is not what GET /orders/ documents."""
    response = kiosk.get("/api/v1/orders/")
    response.content = json.dumps(response.json()["results"]).encode()
    with pytest.raises(AssertionError, match='is not of type "object"'):
        conforms(documented, "GET", "/api/v1/orders/", "/api/v1/orders/", response)
