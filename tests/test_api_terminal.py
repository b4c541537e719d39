"""GET /api/v1/terminal/: a kiosk reads its own terminal and store, to ask "eat in or take away?" only where
the store offers both."""

import pytest

from orders.models import Terminal
from tests.conftest import client_for, make_user, store_named

pytestmark = pytest.mark.django_db


def test_a_kiosk_reads_its_terminal_and_what_its_store_offers(kiosk, terminal):
    answer = kiosk.get("/api/v1/terminal/")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "id": terminal.pk,
        "name": "Totem A",
        "store": {
            "slug": "loja-1",
            "name": "Loja 1",
            "time_zone": "America/Sao_Paulo",
            "offers_eat_in": False,
            "offers_takeaway": True,
        },
    }


def test_a_store_offering_both_says_so():
    store = store_named("Loja Centro", offers_eat_in=True, offers_takeaway=True)
    user = make_user("kiosk-c", "kiosk")
    Terminal.objects.create(name="Totem C", store=store, external_pos_id="POSC", user=user)
    store_answer = client_for(user).get("/api/v1/terminal").json()["store"]
    assert (store_answer["offers_eat_in"], store_answer["offers_takeaway"]) == (True, True)


def test_only_a_kiosk_with_a_terminal_has_one(kitchen):
    assert kitchen.get("/api/v1/terminal/").json()["code"] == "permission_denied"
    no_terminal = client_for(make_user("kiosk-x", "kiosk")).get("/api/v1/terminal/")
    assert (no_terminal.status_code, no_terminal.json()["code"]) == (403, "permission_denied")
    assert client_for(None).get("/api/v1/terminal/").status_code == 401
