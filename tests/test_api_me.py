"""GET /api/v1/me/: who is logged in and the store its screens are about, so the kitchen display and the
counter show their store's name and times before any order exists."""

import pytest

from orders.models import Terminal
from tests.conftest import client_for, make_user, staff_of, store_named

pytestmark = pytest.mark.django_db


@pytest.fixture
def manaus():
    return store_named("Loja Manaus", time_zone="America/Manaus")


def test_a_kitchen_login_gets_its_own_store_whatever_it_asks_for(manaus, terminal):
    cook = client_for(staff_of(make_user("cozinha-mao", "kitchen"), manaus))
    answer = cook.get("/api/v1/me/")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "username": "cozinha-mao",
        "roles": ["kitchen"],
        "store": {"slug": "loja-manaus", "name": "Loja Manaus", "time_zone": "America/Manaus"},
    }
    assert cook.get("/api/v1/me/", {"store": "loja-1"}).json()["store"]["slug"] == "loja-manaus"


def test_a_cashier_and_a_kiosk_get_their_stores(manaus, terminal, kiosk):
    cashier = client_for(staff_of(make_user("caixa-mao", "cashier"), manaus))
    assert cashier.get("/api/v1/me").json()["store"]["name"] == "Loja Manaus"
    me = kiosk.get("/api/v1/me/").json()
    assert (me["username"], me["roles"], me["store"]["slug"]) == ("kiosk-a", ["kiosk"], "loja-1")


def test_a_manager_sees_every_store_unless_a_screen_names_one(manaus, manager):
    me = manager.get("/api/v1/me/").json()
    assert (me["username"], me["roles"], me["store"]) == ("boss", ["manager"], None)
    assert manager.get("/api/v1/me/", {"store": "loja-manaus"}).json()["store"]["time_zone"] == "America/Manaus"
    unknown = manager.get("/api/v1/me/", {"store": "nope"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, "validation_error")


def test_logins_without_a_store_or_a_role(db):
    assert client_for(make_user("cook-nowhere", "kitchen")).get("/api/v1/me/").json()["store"] is None
    kiosk_user = make_user("kiosk-loose", "kiosk")
    assert client_for(kiosk_user).get("/api/v1/me/").json()["store"] is None
    Terminal.objects.create(name="Totem L", store=store_named("Loja 1"), external_pos_id="POSL", user=kiosk_user)
    assert client_for(kiosk_user).get("/api/v1/me/").json()["store"]["slug"] == "loja-1"
    both = make_user("chefe", "kitchen")
    both.groups.add(make_user("x", "cashier").groups.get())
    assert client_for(both).get("/api/v1/me/").json()["roles"] == ["cashier", "kitchen"]
    assert client_for(make_user("nobody")).get("/api/v1/me/").status_code == 403
    assert client_for(None).get("/api/v1/me/").status_code == 401
