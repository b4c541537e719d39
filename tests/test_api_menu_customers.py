"""The menu as kiosks see it, menu management by managers, and identifying customers by CPF."""

import pytest

from orders.models import Customer, Product
from tests.conftest import client_for, place

pytestmark = pytest.mark.django_db


def test_categories_in_menu_order(kiosk, menu):
    response = kiosk.get("/api/v1/categories/")
    assert [c["slug"] for c in response.json()] == ["lanche", "bebida"]


def test_kiosk_sees_only_orderable_products(kiosk, menu):
    Product.objects.create(category=menu["bebida"], name="Esgotado", price="5.00", stock=0)
    names = [p["name"] for p in kiosk.get("/api/v1/products/").json()]
    assert names == ["X-Burger", "Suco"]
    bebidas = kiosk.get("/api/v1/products/?category=bebida").json()
    assert [(p["name"], p["price"], p["category"], p["available"]) for p in bebidas] == [
        ("Suco", "9.90", "bebida", True)
    ]
    assert kiosk.get(f"/api/v1/products/{menu['pie'].pk}/").status_code == 404


def test_manager_sees_everything(manager, menu):
    names = {p["name"] for p in manager.get("/api/v1/products/").json()}
    assert names == {"X-Burger", "Suco", "Torta"}


def test_manager_creates_updates_and_deactivates_a_product(manager, menu):
    response = manager.post(
        "/api/v1/products/",
        {"category": "bebida", "name": "Chá gelado", "price": "7.50", "stock": 10},
        format="json",
    )
    assert response.status_code == 201, response.json()
    product = response.json()
    assert (product["price"], product["stock"], product["active"]) == ("7.50", 10, True)

    response = manager.patch(f"/api/v1/products/{product['id']}/", {"price": "8.00", "stock": None}, format="json")
    assert response.status_code == 200
    assert (response.json()["price"], response.json()["stock"]) == ("8.00", None)

    assert manager.delete(f"/api/v1/products/{product['id']}/").status_code == 204
    assert Product.objects.get(pk=product["id"]).active is False


@pytest.mark.parametrize(
    "body",
    [
        {"price": "0"},
        {"price": "-1.00"},
        {"price": "1.999"},
        {"price": "NaN"},
        {"price": "1e10"},
        {"stock": -1},
        {"stock": "3"},
        {"category": "nope"},
        {"name": ""},
        {"colour": "red"},
    ],
)
def test_bad_product_changes_are_400_and_change_nothing(manager, menu, body):
    response = manager.patch(f"/api/v1/products/{menu['burger'].pk}/", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "validation_error"
    burger = Product.objects.get(pk=menu["burger"].pk)
    assert (str(burger.price), burger.stock, burger.name) == ("25.90", None, "X-Burger")


def test_only_managers_change_the_menu(kiosk, kitchen, menu):
    for client in (kiosk, kitchen):
        response = client.post("/api/v1/products/", {"category": "bebida", "name": "X", "price": "1.00"}, format="json")
        assert response.status_code == 403
        assert (
            client.patch(f"/api/v1/products/{menu['burger'].pk}/", {"price": "0.01"}, format="json").status_code == 403
        )
        assert client.delete(f"/api/v1/products/{menu['burger'].pk}/").status_code == 403
    assert Product.objects.get(pk=menu["burger"].pk).price == menu["burger"].price


@pytest.mark.parametrize("cpf", ["529.982.247-25", "52998224725", " 529982247-25 "])
def test_identify_by_cpf_in_any_common_format(kiosk, cpf):
    response = kiosk.post(
        "/api/v1/customers/", {"cpf": cpf, "name": "Maria", "email": "maria@example.com"}, format="json"
    )
    assert response.status_code == 201
    assert response.json() == {
        "id": response.json()["id"],
        "name": "Maria",
        "cpf": "***.982.247-**",
        "email": "m***@example.com",
    }
    again = kiosk.post("/api/v1/customers/", {"cpf": "529.982.247-25"}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == response.json()["id"]
    assert Customer.objects.get().cpf == "52998224725"


def test_lookup_by_cpf(kiosk):
    kiosk.post("/api/v1/customers/", {"cpf": "52998224725", "name": "Maria"}, format="json")
    response = kiosk.get("/api/v1/customers/?cpf=529.982.247-25")
    assert (response.status_code, response.json()["name"]) == (200, "Maria")
    assert kiosk.get("/api/v1/customers/?cpf=390.533.447-05").status_code == 404
    for bad in ("", "123", "390.533.447-00", "abcdefghijk"):
        response = kiosk.get(f"/api/v1/customers/?cpf={bad}")
        assert (response.status_code, response.json()["code"]) == (400, "validation_error"), bad


def test_a_kiosk_learns_only_the_first_name_of_a_cpf_staff_the_full_name(kiosk, manager, menu):
    """Whoever types a CPF at a kiosk gets "Olá, Maria!", not whose CPF it is; staff see the full name."""
    kiosk.post("/api/v1/customers/", {"cpf": "52998224725", "name": "Maria da Silva Souza"}, format="json")
    assert kiosk.get("/api/v1/customers/?cpf=52998224725").json()["name"] == "Maria"
    assert kiosk.post("/api/v1/customers/", {"cpf": "52998224725"}, format="json").json()["name"] == "Maria"
    assert manager.get("/api/v1/customers/?cpf=52998224725").json()["name"] == "Maria da Silva Souza"

    placed = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}], customer_cpf="52998224725").json()
    assert placed["customer"]["name"] == "Maria"
    assert kiosk.get(f"/api/v1/orders/{placed['id']}/").json()["customer"]["name"] == "Maria"
    assert kiosk.get("/api/v1/orders/").json()["results"][0]["customer"]["name"] == "Maria"
    assert manager.get(f"/api/v1/orders/{placed['id']}/").json()["customer"]["name"] == "Maria da Silva Souza"


@pytest.mark.parametrize(
    "body",
    [
        {"cpf": "123.456.789-00"},
        {"cpf": "000.000.000-00"},
        {"cpf": "5299822472"},
        {"cpf": 52998224725.5},
        {"cpf": None},
        {},
        {"cpf": "52998224725", "email": "not-an-email"},
        {"cpf": "52998224725", "nickname": "M"},
    ],
)
def test_bad_customer_bodies_are_400(kiosk, body):
    response = kiosk.post("/api/v1/customers/", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert not Customer.objects.exists()


def test_kitchen_and_anonymous_cannot_look_customers_up(kitchen):
    assert kitchen.get("/api/v1/customers/?cpf=52998224725").status_code == 403
    assert client_for(None).get("/api/v1/customers/?cpf=52998224725").status_code == 401
