"""GET /api/v1/me/: who is logged in and the store its screens are about, so the kitchen display and the
counter show their store's name and times before any order exists; a kiosk also learns its terminal and whether
its store offers eating in, taking away or both (the kiosk screen asks "eat in or take away?" only then)."""

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
        "store": {
            "slug": "loja-manaus",
            "name": "Loja Manaus",
            "time_zone": "America/Manaus",
            "offers_eat_in": False,
            "offers_takeaway": True,
        },
        "terminal": None,
    }
    assert cook.get("/api/v1/me/", {"store": "loja-1"}).json()["store"]["slug"] == "loja-manaus"


def test_a_kiosk_reads_its_terminal_and_what_its_store_offers(kiosk, terminal):
    answer = kiosk.get("/api/v1/me/")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "username": "kiosk-a",
        "roles": ["kiosk"],
        "store": {
            "slug": "loja-1",
            "name": "Loja 1",
            "time_zone": "America/Sao_Paulo",
            "offers_eat_in": False,
            "offers_takeaway": True,
        },
        "terminal": {"id": terminal.pk, "name": "Totem A"},
    }
    # A kiosk's store is its terminal's, whatever it asks for.
    store_named("Loja Manaus")
    assert kiosk.get("/api/v1/me/", {"store": "loja-manaus"}).json()["store"]["slug"] == "loja-1"


def test_a_store_offering_both_says_so():
    store = store_named("Loja Centro", offers_eat_in=True, offers_takeaway=True)
    user = make_user("kiosk-c", "kiosk")
    Terminal.objects.create(name="Totem C", store=store, external_pos_id="POSC", user=user)
    me = client_for(user).get("/api/v1/me").json()
    assert (me["store"]["offers_eat_in"], me["store"]["offers_takeaway"], me["terminal"]["name"]) == (
        True,
        True,
        "Totem C",
    )


def test_a_cashier_gets_its_store_and_no_terminal(manaus):
    me = client_for(staff_of(make_user("caixa-mao", "cashier"), manaus)).get("/api/v1/me").json()
    assert (me["store"]["name"], me["terminal"]) == ("Loja Manaus", None)


def test_a_manager_sees_every_store_unless_a_screen_names_one(manaus, manager):
    me = manager.get("/api/v1/me/").json()
    assert (me["username"], me["roles"], me["store"], me["terminal"]) == ("boss", ["manager"], None, None)
    assert manager.get("/api/v1/me/", {"store": "loja-manaus"}).json()["store"]["time_zone"] == "America/Manaus"
    unknown = manager.get("/api/v1/me/", {"store": "nope"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, "validation_error")


def test_logins_without_a_store_or_a_role(db):
    assert client_for(make_user("cook-nowhere", "kitchen")).get("/api/v1/me/").json()["store"] is None
    kiosk_user = make_user("kiosk-loose", "kiosk")
    assert client_for(kiosk_user).get("/api/v1/me/").json() == {
        "username": "kiosk-loose",
        "roles": ["kiosk"],
        "store": None,
        "terminal": None,
    }
    terminal = Terminal.objects.create(
        name="Totem L", store=store_named("Loja 1"), external_pos_id="POSL", user=kiosk_user
    )
    me = client_for(kiosk_user).get("/api/v1/me/").json()
    assert (me["store"]["slug"], me["terminal"]) == ("loja-1", {"id": terminal.pk, "name": "Totem L"})
    both = make_user("chefe", "kitchen")
    both.groups.add(make_user("x", "cashier").groups.get())
    assert client_for(both).get("/api/v1/me/").json()["roles"] == ["cashier", "kitchen"]
    assert client_for(make_user("nobody")).get("/api/v1/me/").status_code == 403
    assert client_for(None).get("/api/v1/me/").status_code == 401
