"""The webhook-endpoint API: managers subscribe URLs to events, rotate secrets, pause, resume and delete
subscriptions; a real subscriber on 127.0.0.1 shows what each change does to the deliveries."""

import pytest
from rest_framework.test import APIClient

from kiosk.events import delivery as delivery_module
from kiosk.events.delivery import deliver, deliveries_sweep, send_again
from kiosk.events.models import EventDelivery, WebhookEndpoint
from kiosk.worker import run_pending
from tests.conftest import new_key, place

pytestmark = pytest.mark.django_db

BASE = "/api/v1/webhook-endpoints/"
FIELDS = {"id", "url", "events", "active", "description", "created_at", "updated_at"}


def subscribe(manager, subscriber, events=("*",), **extra) -> dict:
    """POST a subscription for `subscriber` and give it the secret, as an integrator would."""
    response = manager.post(BASE, {"url": subscriber.url, "events": list(events), **extra}, format="json")
    assert response.status_code == 201, response.json()
    subscriber.secret = response.json()["secret"]
    return response.json()


def order_in(kiosk, menu) -> str:
    return place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"]


# --- Create, read, change, delete ----------------------------------------------------------------


def test_creation_shows_the_secret_once_and_reads_never(manager, subscriber):
    response = manager.post(
        BASE, {"url": subscriber.url, "events": ["order.paid"], "description": "Fiscal receipts"}, format="json"
    )
    assert response.status_code == 201
    created = response.json()
    assert set(created) == FIELDS | {"secret"}
    assert created["secret"].startswith("whsec_") and created["secret"] == WebhookEndpoint.objects.get().secret
    assert (created["url"], created["events"], created["active"]) == (subscriber.url, ["order.paid"], True)
    assert response["Location"] == f"{BASE}{created['id']}/"

    listed = manager.get(BASE).json()
    assert [set(e) for e in listed] == [FIELDS]
    shown = manager.get(response["Location"]).json()
    assert set(shown) == FIELDS and shown["description"] == "Fiscal receipts"
    changed = manager.patch(response["Location"], {"description": "NFC-e"}, format="json").json()
    assert set(changed) == FIELDS and changed["description"] == "NFC-e"
    assert created["secret"] not in str(listed) + str(shown) + str(changed)


def test_a_retried_creation_with_the_same_key_subscribes_once(manager, subscriber):
    body = {"url": subscriber.url, "events": ["*"]}
    key = new_key()
    first = manager.post(BASE, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    again = manager.post(BASE, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert WebhookEndpoint.objects.count() == 1


def test_unknown_ids_are_404(manager):
    for response in (
        manager.get(f"{BASE}999/"),
        manager.patch(f"{BASE}999/", {"active": False}, format="json"),
        manager.delete(f"{BASE}999/"),
        manager.post(f"{BASE}999/rotate-secret/"),
    ):
        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json" and response.json()["code"] == "not_found"


def test_delete_answers_204_then_404_and_pending_deliveries_go_with_it(manager, kiosk, menu, subscriber):
    endpoint = subscribe(manager, subscriber)
    order_in(kiosk, menu)  # a delivery and its task, not run yet
    assert EventDelivery.objects.filter(endpoint_id=endpoint["id"]).count() == 1

    response = manager.delete(f"{BASE}{endpoint['id']}/")
    assert response.status_code == 204 and not response.content
    assert manager.get(f"{BASE}{endpoint['id']}/").status_code == 404
    assert manager.delete(f"{BASE}{endpoint['id']}/").status_code == 404
    assert not EventDelivery.objects.exists()
    run_pending()  # the task of the vanished delivery finds nothing to do, and does not fail
    assert subscriber.requests == 0


def test_a_delivery_whose_endpoint_is_deleted_while_sending_ends_quietly(manager, kiosk, menu, subscriber, monkeypatch):
    endpoint = subscribe(manager, subscriber)
    order_in(kiosk, menu)
    sending = EventDelivery.objects.get()
    post = delivery_module._post

    def post_then_delete(delivery):
        answer = post(delivery)
        assert manager.delete(f"{BASE}{endpoint['id']}/").status_code == 204  # a manager, meanwhile
        return answer

    monkeypatch.setattr(delivery_module, "_post", post_then_delete)
    assert deliver(sending.pk) == "endpoint deleted"
    assert subscriber.types() == ["order.placed"] and not EventDelivery.objects.exists()
    assert deliver(sending.pk) == "endpoint deleted"  # its queued retry, if any, too


# --- What the changes do to deliveries -----------------------------------------------------------


def test_a_rotated_secret_signs_what_follows_and_the_old_one_stops_at_once(manager, kiosk, menu, subscriber, settings):
    endpoint = subscribe(manager, subscriber)
    old = subscriber.secret
    response = manager.post(f"{BASE}{endpoint['id']}/rotate-secret/")
    assert response.status_code == 200
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old and set(response.json()) == FIELDS | {"secret"}
    assert WebhookEndpoint.objects.get().secret == new

    order_in(kiosk, menu)
    run_pending()  # the subscriber still checks the old secret: every attempt fails its check
    assert subscriber.bad_signatures == settings.WEBHOOK_MAX_ATTEMPTS and subscriber.received == []
    delivery = EventDelivery.objects.get()
    assert delivery.status == "dead"

    subscriber.secret = new
    send_again([delivery.pk])
    run_pending()
    assert subscriber.types() == ["order.placed"] and subscriber.bad_signatures == settings.WEBHOOK_MAX_ATTEMPTS


def test_a_changed_events_filter_decides_what_later_events_reach(manager, kiosk, menu, subscriber):
    endpoint = subscribe(manager, subscriber, events=["order.cancelled"])
    response = manager.patch(f"{BASE}{endpoint['id']}/", {"events": ["order.placed", "order.placed"]}, format="json")
    assert response.status_code == 200 and response.json()["events"] == ["order.placed"]  # duplicates dropped
    order_id = order_in(kiosk, menu)
    kiosk.post(f"/api/v1/orders/{order_id}/cancel/")
    run_pending()
    assert subscriber.types() == ["order.placed"]


def test_paused_deliveries_wait_and_go_in_sequence_when_resumed(manager, kiosk, menu, subscriber):
    endpoint = subscribe(manager, subscriber)
    url = f"{BASE}{endpoint['id']}/"
    first = order_in(kiosk, menu)
    run_pending()
    assert subscriber.types() == ["order.placed"]

    second = order_in(kiosk, menu)
    for order_id in (first, second):
        assert kiosk.post(f"/api/v1/orders/{order_id}/cancel/").status_code == 200
    response = manager.patch(url, {"active": False}, format="json")
    assert response.status_code == 200 and response.json()["active"] is False
    run_pending()  # their tasks find the endpoint inactive: nothing is sent, nothing is lost
    assert subscriber.types() == ["order.placed"]
    waiting = EventDelivery.objects.filter(status="pending")
    assert waiting.count() == 5
    assert deliveries_sweep(now=waiting.latest("created_at").created_at.replace(year=2999)) == 0  # paused: left

    third = order_in(kiosk, menu)  # while inactive: not subscribed, never sent
    assert not EventDelivery.objects.filter(order_id=third).exists()

    assert manager.patch(url, {"active": True}, format="json").json()["active"] is True
    run_pending()
    by_order = {}
    for _, envelope in subscriber.received:
        by_order.setdefault(envelope["data"]["order_id"], []).append((envelope["sequence"], envelope["type"]))
    assert by_order == {
        first: [(1, "order.placed"), (2, "order.status_changed"), (3, "order.cancelled")],
        second: [(1, "order.placed"), (2, "order.status_changed"), (3, "order.cancelled")],
    }
    assert set(EventDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    assert subscriber.bad_signatures == 0


# --- Who may ---------------------------------------------------------------------------------------


def test_only_managers_manage_subscriptions(kiosk, kitchen, manager, subscriber):
    endpoint = subscribe(manager, subscriber)
    detail = f"{BASE}{endpoint['id']}/"
    for client, status in ((APIClient(), 401), (kiosk, 403), (kitchen, 403)):
        for response in (
            client.get(BASE),
            client.post(BASE, {"url": subscriber.url, "events": ["*"]}, format="json"),
            client.get(detail),
            client.patch(detail, {"active": False}, format="json"),
            client.delete(detail),
            client.post(f"{detail}rotate-secret/"),
        ):
            assert response.status_code == status, response.content
            assert response["Content-Type"] == "application/problem+json"
            assert endpoint["secret"] not in response.content.decode()
    stored = WebhookEndpoint.objects.get()
    assert (WebhookEndpoint.objects.count(), stored.active, stored.secret) == (1, True, endpoint["secret"])


# --- Bad input -------------------------------------------------------------------------------------

GOOD = {"url": "http://127.0.0.1:9/hook", "events": ["*"]}

BAD_BODIES = [
    pytest.param({**GOOD, "url": 123}, "url", id="url-not-a-string"),
    pytest.param({**GOOD, "url": None}, "url", id="url-null"),
    pytest.param({**GOOD, "url": ""}, "url", id="url-empty"),
    pytest.param({**GOOD, "url": "http://127.0.0.1/" + "a" * 500}, "url", id="url-too-long"),
    pytest.param({**GOOD, "url": "not a url"}, "url", id="url-garbage"),
    pytest.param({**GOOD, "url": "ftp://127.0.0.1/hook"}, "url", id="url-ftp"),
    pytest.param({**GOOD, "url": "http://user:pw@127.0.0.1/hook"}, "url", id="url-credentials"),
    pytest.param({**GOOD, "url": ["http://127.0.0.1/"]}, "url", id="url-list"),
    pytest.param({**GOOD, "url": "http://[::1/hook"}, "url", id="url-unbalanced-bracket"),
    pytest.param({**GOOD, "url": "http://127.0.0.1/\ud800"}, "url", id="url-lone-surrogate"),
    pytest.param({**GOOD, "url": "http://127.0.0.1/a\u0000b"}, "url", id="url-nul"),
    pytest.param({**GOOD, "url": "http://127.0.0.1/\r\nX-Evil: 1"}, "url", id="url-header-injection"),
    pytest.param({**GOOD, "url": "http:///hook"}, "url", id="url-no-host"),
    pytest.param({**GOOD, "events": []}, "events", id="events-empty"),
    pytest.param({**GOOD, "events": "*"}, "events", id="events-not-a-list"),
    pytest.param({**GOOD, "events": ["order.nope"]}, "events", id="events-unknown"),
    pytest.param({**GOOD, "events": ["*", "order.paid"]}, "events", id="events-star-mixed"),
    pytest.param({**GOOD, "events": [1]}, "events", id="events-number"),
    pytest.param({**GOOD, "events": [None]}, "events", id="events-null-item"),
    pytest.param({**GOOD, "events": [{"type": "order.paid"}]}, "events", id="events-object-item"),
    pytest.param({**GOOD, "events": None}, "events", id="events-null"),
    pytest.param({**GOOD, "description": "x" * 201}, "description", id="description-too-long"),
    pytest.param({**GOOD, "description": 5}, "description", id="description-number"),
    pytest.param({**GOOD, "description": "\ud800"}, "description", id="description-lone-surrogate"),
    pytest.param({**GOOD, "active": "true"}, "active", id="active-string"),
    pytest.param({**GOOD, "active": 1}, "active", id="active-number"),
    pytest.param({**GOOD, "active": None}, "active", id="active-null"),
    pytest.param({**GOOD, "secret": "whsec_mine"}, "secret", id="secret-not-writable"),
    pytest.param({**GOOD, "id": 7}, "id", id="id-not-writable"),
    pytest.param({**GOOD, "colour": "red"}, "colour", id="unknown-field"),
    pytest.param([GOOD], "non_field_errors", id="body-list"),
    pytest.param("http://127.0.0.1/", "non_field_errors", id="body-string"),
    pytest.param(42, "non_field_errors", id="body-number"),
]

PRIVATE = [
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data",
    "http://192.168.0.10:8080/hook",
    "http://[fd00::1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://0.0.0.0/",
    "file:///etc/passwd",
]


def assert_refused(response, field):
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error" and body["detail"]
    assert field in body["errors"], body


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_creations_are_400_and_create_nothing(manager, body, field):
    assert_refused(manager.post(BASE, body, format="json"), field)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("missing", ["url", "events"])
def test_url_and_events_are_required(manager, missing):
    assert_refused(manager.post(BASE, {k: v for k, v in GOOD.items() if k != missing}, format="json"), missing)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_changes_are_400_and_change_nothing(manager, subscriber, body, field):
    endpoint = subscribe(manager, subscriber, events=["order.paid"], description="kept")
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in GOOD or k == field}  # only the bad field
    assert_refused(manager.patch(f"{BASE}{endpoint['id']}/", body, format="json"), field)
    stored = WebhookEndpoint.objects.get()
    assert (stored.url, stored.events, stored.active, stored.description, stored.secret) == (
        subscriber.url,
        ["order.paid"],
        True,
        "kept",
        endpoint["secret"],
    )


@pytest.mark.parametrize("url", PRIVATE)
def test_private_addresses_are_refused(manager, subscriber, url):
    response = manager.post(BASE, {"url": url, "events": ["*"]}, format="json")
    assert_refused(response, "url")
    assert not WebhookEndpoint.objects.exists()
    endpoint = subscribe(manager, subscriber)
    assert_refused(manager.patch(f"{BASE}{endpoint['id']}/", {"url": url}, format="json"), "url")
    assert WebhookEndpoint.objects.get().url == subscriber.url


def test_every_bad_field_is_reported_at_once(manager):
    response = manager.post(BASE, {"url": "http://10.0.0.1/", "events": ["order.nope"]}, format="json")
    assert_refused(response, "url")
    assert "events" in response.json()["errors"]


def test_a_malformed_body_is_400(manager):
    response = manager.generic("POST", BASE, b'{"url": ', content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "malformed_request"
    assert not WebhookEndpoint.objects.exists()
