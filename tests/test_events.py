"""Domain events and outgoing webhooks, in this process: what is emitted, when, in which order, and how a
real subscriber on 127.0.0.1 receives it (signed, retried, dead-lettered, in sequence per order)."""

from decimal import Decimal

import pytest
from django.db import transaction

from kiosk.events.delivery import deliver, send_again
from kiosk.events.models import Event, EventDelivery, WebhookEndpoint
from kiosk.events.services import EventOutsideTransaction, emit
from kiosk.worker import run_pending
from orders.models import Order
from tests.conftest import new_key, place
from tests.subscriber import verify

pytestmark = pytest.mark.django_db


def types_of(order_id) -> list[str]:
    return list(Event.objects.filter(order_id=order_id).order_by("sequence").values_list("type", flat=True))


def pay(kiosk, order_id, mercadopago):
    payment = kiosk.post(f"/api/v1/orders/{order_id}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.deliver()
    return payment


def test_an_order_placed_and_paid_tells_its_story_in_sequence(kiosk, menu, mercadopago):
    response = kiosk.post(
        "/api/v1/orders/",
        {"items": [{"product_id": menu["burger"].pk, "quantity": 2}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
        HTTP_X_REQUEST_ID="kiosk-req-1",
    )
    order_id = response.json()["id"]
    placed = Event.objects.get(order_id=order_id)
    envelope = placed.envelope()
    assert envelope["type"] == "order.placed" and envelope["sequence"] == 1 and envelope["version"] == 1
    assert envelope["aggregate"] == {"type": "order", "id": order_id}
    assert envelope["correlation_id"] == "kiosk-req-1"  # the X-Request-ID of the request that placed it
    assert envelope["data"]["items"][0]["unit_price"] == "25.90" and envelope["data"]["total"] == "51.80"

    payment = pay(kiosk, order_id, mercadopago)
    assert types_of(order_id) == ["order.placed", "payment.approved", "order.status_changed", "order.paid"]
    events = list(Event.objects.filter(order_id=order_id).order_by("sequence"))
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    approved, paid = events[1], events[3]
    assert approved.aggregate_type == "payment" and approved.aggregate_id == str(payment["id"])
    assert paid.causation_id == str(events[2].event_id)  # each caused by the one before, in that change
    assert events[2].causation_id == str(approved.event_id)
    fiscal = paid.data
    assert fiscal["payment"]["method"] == "mercadopago_qr"
    assert fiscal["payment"]["mercadopago"]["order_id"] == payment["provider_order_id"]
    assert fiscal["payment"]["amount"] == "51.80" and fiscal["totals"]["total"] == "51.80"
    assert fiscal["items"] == [
        {
            "product_id": menu["burger"].pk,
            "name": "X-Burger",
            "quantity": 2,
            "unit_price": "25.90",
            "line_total": "51.80",
            "note": "",
            "options": [],
        }
    ]
    assert fiscal["customer"] is None


def test_the_cpf_reaches_the_fiscal_receipt_only_when_the_customer_asked(kiosk, menu, mercadopago):
    cpf = "52998224725"
    items = [{"product_id": menu["burger"].pk, "quantity": 1}]
    asked = place(kiosk, items, customer_cpf=cpf, cpf_on_receipt=True).json()
    not_asked = place(kiosk, items, customer_cpf=cpf).json()
    assert asked["cpf_on_receipt"] is True and not_asked["cpf_on_receipt"] is False
    for order in (asked, not_asked):
        pay(kiosk, order["id"], mercadopago)
    paid = {str(e.order_id): e.data for e in Event.objects.filter(type="order.paid")}
    assert paid[asked["id"]]["customer"] == {"cpf": cpf}
    assert paid[not_asked["id"]]["customer"] is None
    assert cpf not in str(Event.objects.get(order_id=not_asked["id"], type="order.placed").data)


def test_cpf_on_receipt_without_a_cpf_is_refused(kiosk, menu):
    response = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}], cpf_on_receipt=True)
    assert response.status_code == 400 and "cpf_on_receipt" in response.json()["errors"]
    assert not Order.objects.exists() and not Event.objects.exists()


def test_a_rolled_back_change_emits_nothing(kiosk, endpoint, order):
    from orders.services import order_cancel

    before = (Event.objects.count(), EventDelivery.objects.count())
    with pytest.raises(RuntimeError), transaction.atomic():
        order_cancel(order_id=order["id"])
        assert Event.objects.filter(type="order.cancelled").exists()
        raise RuntimeError("the caller fails after the change")
    assert (Event.objects.count(), EventDelivery.objects.count()) == before
    assert not Event.objects.filter(type="order.cancelled").exists()


def test_an_event_outside_a_transaction_is_refused(order):
    with pytest.raises(EventOutsideTransaction):
        emit("order.placed", order=Order.objects.get(pk=order["id"]), data={})


def test_a_subscriber_receives_signed_events_in_order(kiosk, menu, mercadopago, endpoint, subscriber):
    order_id = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"]
    pay(kiosk, order_id, mercadopago)  # deliver() also runs our worker: the deliveries go out
    run_pending()
    assert subscriber.types() == ["order.placed", "payment.approved", "order.status_changed", "order.paid"]
    assert [env["sequence"] for _, env in subscriber.received] == [1, 2, 3, 4]
    assert subscriber.bad_signatures == 0
    assert set(EventDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_failing_subscriber_gets_the_event_again_with_the_same_delivery_id(endpoint, order, subscriber):
    subscriber.fail(2)
    run_pending()
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [a.status_code for a in delivery.attempt_log.order_by("attempted_at")] == [500, 500, 204]
    assert subscriber.received[0][0] == str(delivery.delivery_id)


def test_a_subscriber_that_keeps_failing_gets_a_dead_delivery_and_send_again(endpoint, order, subscriber):
    subscriber.fail(100)
    run_pending()
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("dead", 4, "HTTP 500")
    subscriber.fail(0)
    assert send_again([delivery.pk]) == 1
    run_pending()
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and subscriber.types() == ["order.placed"]


def test_an_earlier_failing_event_holds_back_its_order_but_not_the_others(kiosk, menu, endpoint, subscriber):
    from orders.services import order_cancel

    first = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"]
    other = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"]
    subscriber.fail_when(lambda env: env["data"]["order_id"] == first and env["type"] == "order.placed")
    order_cancel(order_id=first)
    run_pending()
    by_order = [(env["data"]["order_id"], env["type"]) for _, env in subscriber.received]
    assert by_order == [(other, "order.placed")]  # the first order's cancel waits behind its dead placed
    held = EventDelivery.objects.filter(order_id=first).order_by("sequence")
    assert list(held.values_list("status", flat=True)) == ["dead", "pending", "pending"]

    subscriber.fail_when(None)
    send_again([held[0].pk])
    run_pending()
    assert [env["type"] for _, env in subscriber.received if env["data"]["order_id"] == first] == [
        "order.placed",
        "order.status_changed",
        "order.cancelled",
    ]


def test_a_delivery_is_never_sent_by_two_runners_at_once(endpoint, order, subscriber):
    delivery = EventDelivery.objects.get()
    EventDelivery.objects.filter(pk=delivery.pk).update(locked_until="2999-01-01T00:00:00Z")
    assert deliver(delivery.pk) == "being sent by another worker"
    assert subscriber.requests == 0


def test_only_the_subscribed_types_are_sent(kiosk, menu, subscriber, settings):
    hook = WebhookEndpoint.objects.create(url=subscriber.url, events=["order.cancelled"])
    subscriber.secret = hook.secret
    order_id = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"]
    kiosk.post(f"/api/v1/orders/{order_id}/cancel/")
    run_pending()
    assert subscriber.types() == ["order.cancelled"]


@pytest.mark.parametrize(
    "url",
    ["http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data", "http://[fd00::1]/", "file:///etc/passwd"],
)
def test_a_delivery_never_goes_to_a_private_address(order, url, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    WebhookEndpoint.objects.create(url=url, events=["*"])
    place_again = Order.objects.get(pk=order["id"])
    with transaction.atomic():
        emit("order.status_changed", order=place_again, data={"order_id": order["id"]})
    run_pending()
    delivery = EventDelivery.objects.get()
    assert delivery.status == "dead" and delivery.last_status_code is None
    assert "address" in delivery.last_error or "http" in delivery.last_error


def test_the_readme_verification_snippet_rejects_a_tampered_body():
    from kiosk.events.delivery import sign

    body = b'{"type":"order.paid","data":{"total":"10.00"}}'
    header = sign("whsec_test", body, int(__import__("time").time()))
    assert verify("whsec_test", header, body)
    assert not verify("whsec_test", header, body.replace(b"10.00", b"0.01"))
    assert not verify("another", header, body)


def test_money_in_events_is_exact_decimal_strings(order):
    placed = Event.objects.get(order_id=order["id"])
    assert placed.data["total"] == "61.70" and Decimal(placed.data["total"]) == Decimal("61.70")


def test_the_sweep_sends_what_lost_its_task_but_leaves_what_waits_behind_a_dead_one(kiosk, menu, endpoint, subscriber):
    """The safety net behind the tasks: a delivery whose task is gone (a worker that was down, a lost row) is
    queued again by the schedule; one held behind a dead event of its order waits for "send again"."""
    from datetime import timedelta

    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from kiosk.events.delivery import deliveries_sweep
    from orders.services import order_cancel

    lost = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"]
    held = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"]
    retrying = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()["id"]
    order_cancel(order_id=held)
    order_cancel(order_id=retrying)
    DBTaskResult.objects.all().delete()  # every task lost
    EventDelivery.objects.filter(order_id=held, sequence=1).update(status="dead")
    later = timezone.now() + timedelta(minutes=1)
    # The retrying order's first event is waiting for its next attempt (in an hour): not due, and the two
    # behind it are not either, though they are older than the grace.
    EventDelivery.objects.filter(order_id=retrying, sequence=1).update(next_attempt_at=later + timedelta(hours=1))
    assert deliveries_sweep(now=later) == 1  # the lost order's only event; not those held behind another
    run_pending()
    assert [(env["data"]["order_id"], env["type"]) for _, env in subscriber.received] == [(lost, "order.placed")]
    assert set(EventDelivery.objects.filter(order_id=held).values_list("status", flat=True)) == {"dead", "pending"}


def test_an_order_approved_in_review_reaches_the_fiscal_receipt_once(kiosk, order, mercadopago):
    """Staff approve a flagged payment: the fiscal-receipt issuer hears `order.paid` from that approval."""
    from payments.models import Payment
    from payments.services.review import payment_review_approve

    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)  # paid, but nobody told us
    Payment.objects.filter(pk=payment["id"]).update(needs_review=True, review_reason="checked by hand")
    payment_review_approve(payment_id=payment["id"], actor="manager1", comment="customer showed the receipt")
    assert types_of(order["id"]) == ["order.placed", "payment.approved", "order.status_changed", "order.paid"]
    approved, paid = (Event.objects.get(order_id=order["id"], type=t).data for t in ("payment.approved", "order.paid"))
    assert approved["paid_amount"] == "61.70"  # the money the approval is about, not null
    assert paid["payment"]["method"] == "mercadopago_qr" and paid["payment"]["amount"] == "61.70"


def test_marking_an_already_paid_order_paid_again_issues_no_second_receipt(paid):
    """A double click on "Paid at the counter", or staff taking money for an order Mercado Pago already paid:
    refused, and one `order.paid`, so the fiscal issuer never prints two receipts."""
    from payments.services.checkout import OrderNotPayable, order_pay_at_counter

    with pytest.raises(OrderNotPayable):
        order_pay_at_counter(order_id=paid.order_id, method="cash", amount=paid.amount, actor="manager1")
    assert Event.objects.filter(order_id=paid.order_id, type="order.paid").count() == 1
    assert Event.objects.get(order_id=paid.order_id, type="payment.approved").data["paid_amount"] == "61.70"
