"""The whole path, end to end, over real HTTP on a live server, with the real SDK talking to the simulator:
kiosk places an order, checks out, the customer pays on the simulator, Mercado Pago's signed notification
arrives over HTTP and is stored, our worker process applies it, and the order shows up in the kitchen queue."""

import time

import pytest
import requests

from payments.gateway import breaker
from tests.conftest import make_user, staff_of

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(predicate, *, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_order_to_kitchen_and_a_refund_over_http(live_server, settings, terminal, menu, migration_data, workers):
    staff_of(make_user("kitchen-e2e", "kitchen"), terminal.store)  # the kitchen of the kiosk's store
    make_user("manager-e2e", "manager")
    # Mercado Pago's timing, shortened: notifications a moment after the call, refunds confirmed later.
    settings.MERCADOPAGO_SIMULATOR_AUTOPUMP = True
    settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY = 0.3
    settings.MERCADOPAGO_SIMULATOR_REFUND_DELAY = 0.8
    settings.SITE_URL = live_server.url
    settings.MERCADOPAGO_NOTIFICATION_URL = f"{live_server.url}/api/v1/webhooks/mercadopago/"
    breaker.reset()
    api = f"{live_server.url}/api/v1"
    # Our worker, its own process as in production: it applies the notifications the live server stores.
    workers.start(SITE_URL=live_server.url, MERCADOPAGO_SIMULATOR_REFUND_DELAY="0.8")

    def login(username):
        response = requests.post(f"{api}/auth/token/", json={"username": username, "password": username}, timeout=10)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access']}"}

    kiosk, kitchen, manager = login("kiosk-a"), login("kitchen-e2e"), login("manager-e2e")

    order = requests.post(
        f"{api}/orders/",
        json={"items": [{"product_id": menu["burger"].pk, "quantity": 1}]},
        headers={**kiosk, "Idempotency-Key": "e2e-order"},
        timeout=10,
    )
    assert order.status_code == 201, order.text
    order_id = order.json()["id"]

    checkout = requests.post(
        f"{api}/orders/{order_id}/checkout/", headers={**kiosk, "Idempotency-Key": "e2e-checkout"}, timeout=10
    )
    assert checkout.status_code == 201, checkout.text
    payment = checkout.json()["payment"]
    assert payment["qr_data"] == f"{live_server.url}/mp-simulator/pay/{payment['provider_order_id']}/"

    # The customer scans the QR and pays on the simulator's page.
    page = requests.get(payment["qr_data"], timeout=10)
    assert (page.status_code == 200 and "25,90" in page.text) or "25.90" in page.text
    paid = requests.post(
        f"{live_server.url}/mp-simulator/v1/orders/{payment['provider_order_id']}/simulate",
        json={"outcome": "approved"},
        timeout=10,
    )
    assert paid.status_code == 200, paid.text

    # The signed notification arrives over HTTP in the background; the kiosk polls until it sees it.
    status = wait_for(
        lambda: (
            requests.get(f"{api}/orders/{order_id}/payment/", headers=kiosk, timeout=10).json()["payment"]["status"]
            == "approved"
        )
    )
    assert status
    queue = requests.get(f"{api}/kitchen/orders/", headers=kitchen, timeout=10).json()
    assert [(o["id"], o["status"]) for o in queue] == [(order_id, "received")]

    # A refund: taken at once, confirmed by Mercado Pago later; meanwhile it is pending and reserved.
    payment_id = payment["id"]
    refund = requests.post(
        f"{api}/payments/{payment_id}/refunds/",
        json={"amount": "5.00", "reason": "cold fries"},
        headers={**manager, "Idempotency-Key": "e2e-refund"},
        timeout=10,
    )
    assert refund.status_code == 202, refund.text
    assert refund.json()["refund"]["status"] == "pending"
    assert refund.json()["payment"]["status"] == "approved"

    def refunds():
        return requests.get(f"{api}/payments/{payment_id}/refunds/", headers=manager, timeout=10).json()

    wait_for(lambda: refunds()[0]["status"] == "succeeded")
    polled = requests.get(f"{api}/orders/{order_id}/payment/", headers=kiosk, timeout=10).json()
    assert polled["payment"]["status"] == "partially_refunded"
    assert polled["order"]["status"] == "received"
