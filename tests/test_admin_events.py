"""The back office for outgoing webhooks and background work: who sees it, the endpoint form, "Send again"
delivering to a real subscriber, "Run again" for a dead task, and a page of 100 deliveries in a few queries."""

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from kiosk.events.models import Event, EventDelivery, WebhookEndpoint
from kiosk.jobs import enqueue
from kiosk.models import AuditRecord, WorkerHeartbeat
from kiosk.worker import run_pending
from orders.services import ItemRequest, order_place
from tests import worker_tasks
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

ENDPOINTS = "/admin/events/webhookendpoint/"
EVENTS = "/admin/events/event/"
DELIVERIES = "/admin/events/eventdelivery/"
TASKS = "/admin/django_tasks_database/dbtaskresult/"
WORKERS = "/admin/kiosk/workerheartbeat/"


@pytest.fixture(autouse=True)
def _migration_data(migration_data):
    """Roles and their permissions, as the migrations made them."""


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def manager_admin(manager_user):
    return logged_in(manager_user)


@pytest.fixture
def superuser_admin(db):
    return logged_in(User.objects.create_superuser("root", password="root"))


@pytest.fixture
def delivery(endpoint, terminal, menu) -> EventDelivery:
    """The order.placed of a new order, for the endpoint (not sent yet: its task waits in the queue)."""
    order_place(terminal=terminal, items=[ItemRequest(menu["juice"].pk, 1)])
    return EventDelivery.objects.select_related("event").get()


def dead_task() -> DBTaskResult:
    result = enqueue(worker_tasks.always_fails, "boom")
    for _ in range(40):
        run_pending()
        row = DBTaskResult.objects.get(pk=result.id)
        if row.status == TaskResultStatus.FAILED:
            return row
        time.sleep(0.05)
    raise AssertionError("the task never died")


def act(client, url, action, *pks):
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True)


# --- Who sees what --------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["superuser_admin", "manager_admin"])
def test_every_page_loads_for_managers_and_superusers(request, who, delivery, subscriber):
    client = request.getfixturevalue(who)
    run_pending()  # the delivery goes out: an attempt to show
    WorkerHeartbeat.objects.create(
        worker_id="w1", hostname="h", pid=1, started_at=delivery.created_at, seen_at=delivery.created_at
    )
    task = DBTaskResult.objects.order_by("enqueued_at").first()
    pages = [
        ENDPOINTS,
        f"{ENDPOINTS}{delivery.endpoint_id}/change/",
        f"{ENDPOINTS}add/",
        EVENTS,
        f"{EVENTS}{delivery.event_id}/change/",
        DELIVERIES,
        f"{DELIVERIES}{delivery.pk}/change/",
        TASKS,
        f"{TASKS}?state=dead",
        f"{TASKS}{task.pk}/change/",
        WORKERS,
    ]
    for url in pages:
        assert client.get(url).status_code == 200, url

    endpoint_page = client.get(f"{ENDPOINTS}{delivery.endpoint_id}/change/").content.decode()
    assert delivery.endpoint.secret in endpoint_page  # managers copy it into their subscriber
    event_page = client.get(f"{EVENTS}{delivery.event_id}/change/").content.decode()
    assert "&quot;type&quot;: &quot;order.placed&quot;" in event_page  # the envelope, pretty-printed
    delivery_page = client.get(f"{DELIVERIES}{delivery.pk}/change/").content.decode()
    assert "204" in delivery_page and "delivered" in delivery_page.lower()
    for url in (ENDPOINTS, EVENTS, DELIVERIES):
        assert client.get(url, {"q": "not-a-uuid"}).status_code == 200


def test_kitchen_staff_see_none_of_it(delivery):
    cook = logged_in(make_user("cashier", "kitchen", is_staff=True))
    for url in (ENDPOINTS, EVENTS, DELIVERIES, TASKS, WORKERS, f"{DELIVERIES}{delivery.pk}/change/"):
        assert cook.get(url).status_code == 403, url
    assert "eventdelivery" not in cook.get("/admin/").content.decode()


def test_events_and_deliveries_cannot_be_edited_or_deleted(superuser_admin, delivery):
    assert superuser_admin.get(f"{EVENTS}add/").status_code == 403
    assert superuser_admin.post(f"{DELIVERIES}{delivery.pk}/delete/", {"post": "yes"}).status_code == 403
    superuser_admin.post(f"{DELIVERIES}{delivery.pk}/change/", {"status": "delivered", "attempts": "9"})
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)


# --- Send again, run again ------------------------------------------------------------------------


def test_send_again_revives_a_dead_delivery_and_the_worker_delivers_it(
    manager_admin, manager_user, delivery, subscriber
):
    subscriber.fail(100)
    run_pending()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("dead", 4)

    subscriber.fail(0)
    response = act(manager_admin, DELIVERIES, "send_again", delivery.pk)
    assert "Sending 1 delivery again." in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert DBTaskResult.objects.filter(task_path__endswith="deliver_event", status=TaskResultStatus.READY).exists()
    assert AuditRecord.objects.filter(actor=manager_user, action="Send delivery again", object_id=str(delivery.pk))

    run_pending()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert [(d, env["type"]) for d, env in subscriber.received] == [(str(delivery.delivery_id), "order.placed")]


def test_send_again_leaves_pending_deliveries_to_the_worker(manager_admin, delivery):
    response = act(manager_admin, DELIVERIES, "send_again", delivery.pk)
    assert "Skipped 1 still pending" in response.content.decode()


def test_run_again_puts_a_dead_task_back_in_the_queue(manager_admin, manager_user):
    row = dead_task()
    listed = manager_admin.get(TASKS, {"state": "dead"}).content.decode()
    assert "always_fails" in listed and "3 of 3" in listed
    assert "builtins.RuntimeError" in listed and "RuntimeError: boom fails on purpose" in listed
    assert "always_fails" not in manager_admin.get(TASKS, {"state": "succeeded"}).content.decode()
    assert "boom fails on purpose" in manager_admin.get(f"{TASKS}{row.pk}/change/").content.decode()  # traceback

    response = act(manager_admin, TASKS, "run_again", row.pk)
    assert "1 dead task back in the queue." in response.content.decode()
    row.refresh_from_db()
    assert row.status == TaskResultStatus.READY
    assert AuditRecord.objects.filter(actor=manager_user, action="Run task again", object_id=str(row.pk)).exists()
    assert "always_fails" in manager_admin.get(TASKS, {"state": "ready"}).content.decode()


# --- Endpoints ------------------------------------------------------------------------------------


def endpoint_form(url, *events, description="printer"):
    return {"url": url, "events": list(events), "active": "on", "description": description}


def test_the_endpoint_form_checks_what_the_api_checks(manager_admin, subscriber):
    refused = {
        "private address": endpoint_form("http://10.0.0.1/", "order.paid"),
        "unknown type": endpoint_form(subscriber.url, "order.eaten"),
        "all and more": endpoint_form(subscriber.url, "*", "order.paid"),
        "nothing ticked": endpoint_form(subscriber.url),
    }
    for case, form in refused.items():
        response = manager_admin.post(f"{ENDPOINTS}add/", form)
        assert response.status_code == 200 and "errorlist" in response.content.decode(), case
    page = manager_admin.post(f"{ENDPOINTS}add/", refused["private address"]).content.decode()
    assert "private, loopback or link-local" in page
    page = manager_admin.post(f"{ENDPOINTS}add/", refused["unknown type"]).content.decode()
    assert "Unknown event type(s): order.eaten" in page
    assert not WebhookEndpoint.objects.exists()

    response = manager_admin.post(
        f"{ENDPOINTS}add/", endpoint_form(subscriber.url, "order.paid", "order.paid", "payment.refunded")
    )
    assert response.status_code == 302
    stored = WebhookEndpoint.objects.get()
    assert (stored.url, stored.events) == (subscriber.url, ["order.paid", "payment.refunded"])
    assert stored.secret.startswith("whsec_")


def test_rotating_the_secret_signs_with_the_new_one(manager_admin, manager_user, delivery, subscriber):
    old = delivery.endpoint.secret
    response = act(manager_admin, ENDPOINTS, "rotate_secret", delivery.endpoint_id)
    assert "New signing secret for 1 endpoint." in response.content.decode()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret != old and endpoint.secret.startswith("whsec_")
    assert old not in str(list(AuditRecord.objects.values()))  # the trail says it rotated, never the secret
    subscriber.secret = endpoint.secret
    run_pending()
    assert subscriber.types() == ["order.placed"] and subscriber.bad_signatures == 0


def test_a_deactivated_endpoint_waits_and_gets_its_events_when_active_again(manager_admin, delivery, subscriber):
    form = endpoint_form(subscriber.url, "*", description="fiscal printer")
    page = f"{ENDPOINTS}{delivery.endpoint_id}/change/"
    assert manager_admin.post(page, {**form, "active": ""}).status_code == 302
    run_pending()
    delivery.refresh_from_db()
    assert delivery.status == "pending" and subscriber.received == []

    assert manager_admin.post(page, form).status_code == 302  # active again: what waited goes now
    run_pending()
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and subscriber.types() == ["order.placed"]


def test_deleting_an_endpoint_takes_its_deliveries_with_it(manager_admin, delivery, subscriber):
    run_pending()
    page = manager_admin.get(f"{ENDPOINTS}{delivery.endpoint_id}/delete/").content.decode()
    assert "Event deliveries: 1" in page and "Delivery attempts: 1" in page  # counted, not listed
    assert manager_admin.post(f"{ENDPOINTS}{delivery.endpoint_id}/delete/", {"post": "yes"}).status_code == 302
    assert not WebhookEndpoint.objects.exists() and not EventDelivery.objects.exists()
    assert Event.objects.exists()  # the events stay: they are the orders' history, not the subscriber's


# --- A page of 100 ----------------------------------------------------------------------------------


def test_a_hundred_deliveries_list_in_a_handful_of_queries(
    manager_admin, terminal, menu, django_assert_max_num_queries
):
    order = order_place(terminal=terminal, items=[ItemRequest(menu["juice"].pk, 1)])
    endpoints = [WebhookEndpoint.objects.create(url=f"https://example.com/{n}", events=["*"]) for n in range(2)]
    last = Event.objects.get(order=order).sequence
    for sequence in range(last + 1, last + 51):
        event = Event.objects.create(
            type="order.status_changed", order=order, sequence=sequence, aggregate_type="order",
            aggregate_id=str(order.pk), data={"status": "ready"},
        )  # fmt: skip
        for hook in endpoints:
            EventDelivery.objects.create(event=event, endpoint=hook, order_id=order.pk, sequence=sequence)
    assert EventDelivery.objects.count() == 100

    with django_assert_max_num_queries(12):
        page = manager_admin.get(DELIVERIES)
    assert page.status_code == 200 and page.content.decode().count('name="_selected_action"') == 100
    with django_assert_max_num_queries(12):
        assert manager_admin.get(EVENTS).status_code == 200
    with django_assert_max_num_queries(12):
        assert manager_admin.get(ENDPOINTS).status_code == 200
