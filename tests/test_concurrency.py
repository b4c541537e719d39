"""What only real row locks can prove: parallel double taps and the race for the last unit of stock.

These run on MySQL/MariaDB (CI does); on SQLite, whose writers queue one at a time, they are skipped.
"""

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone

from orders.models import Order, Product, Terminal
from orders.services import order_cancel
from tests.conftest import client_for, make_user, place, requires_mysql, store_named

pytestmark = [pytest.mark.django_db(transaction=True), requires_mysql]
THREADS = 10


@pytest.fixture(autouse=True)
def _migration_data(migration_data):
    """Roles, permissions and the pickup counter, as the migrations made them."""


def _in_parallel(fn, count=THREADS):
    """Runs fn(i) in `count` threads released at the same instant; each thread uses its own connection."""
    barrier = threading.Barrier(count)

    def run(i):
        try:
            barrier.wait(timeout=10)
            return fn(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_same_idempotency_key_from_parallel_requests_creates_one_order(terminal, menu):
    body = [{"product_id": menu["juice"].pk, "quantity": 1}]
    responses = _in_parallel(lambda i: place(client_for(terminal.user), body, key="double-tap"))

    statuses = sorted(r.status_code for r in responses)
    assert Order.objects.count() == 1
    assert Product.objects.get(pk=menu["juice"].pk).stock == 2
    created = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r]
    assert len(created) == 1, statuses
    order_id = created[0].json()["id"]
    for response in responses:
        assert response.status_code in (201, 409), statuses
        if response.status_code == 201:
            assert response.json()["id"] == order_id
        else:
            assert response.json()["code"] == "idempotency_request_in_progress"


def test_last_unit_of_stock_goes_to_exactly_one_order(menu):
    Product.objects.filter(pk=menu["juice"].pk).update(stock=1)
    terminals = [
        Terminal.objects.create(
            name=f"T{i}", store=store_named("S"), external_pos_id=f"RACE{i}", user=make_user(f"race-{i}", "kiosk")
        )
        for i in range(THREADS)
    ]
    body = [{"product_id": menu["juice"].pk, "quantity": 1}, {"product_id": menu["burger"].pk, "quantity": 1}]
    responses = _in_parallel(lambda i: place(client_for(terminals[i].user), body))

    winners = [r for r in responses if r.status_code == 201]
    losers = [r for r in responses if r.status_code != 201]
    assert len(winners) == 1, [r.status_code for r in responses]
    assert all(r.status_code == 409 and r.json()["code"] == "out_of_stock" for r in losers)
    assert all(r.json()["product_name"] == "Suco" for r in losers)
    assert Product.objects.get(pk=menu["juice"].pk).stock == 0
    assert Order.objects.count() == 1


def test_the_last_unit_of_a_combo_part_goes_to_exactly_one_order(menu):
    """Kiosks racing for the last Suco: half order it in a combo, half alone. One order gets it; the others
    are out_of_stock naming it and reserve nothing (not even the combo's other parts)."""
    from orders.models import Category, Option, OptionGroup

    Product.objects.filter(pk=menu["juice"].pk).update(stock=1)
    fries = Product.objects.create(category=menu["lanche"], name="Batata", price="12.90", stock=THREADS)
    combo = Product.objects.create(
        category=Category.objects.create(name="Combos", slug="combos"), name="Combo", kind="combo", price="35.00"
    )
    slots = [
        OptionGroup.objects.create(product=combo, name=name, min_choices=1) for name in ("Lanche", "Batata", "Bebida")
    ]
    burger, side, drink = (
        Option.objects.create(group=slot, name=part.name, product=part)
        for slot, part in zip(slots, (menu["burger"], fries, menu["juice"]), strict=True)
    )
    terminals = [
        Terminal.objects.create(
            name=f"T{i}", store=store_named("S"), external_pos_id=f"COMBO{i}", user=make_user(f"combo-{i}", "kiosk")
        )
        for i in range(THREADS)
    ]
    in_a_combo = [
        {
            "product_id": combo.pk,
            "quantity": 1,
            "options": [{"option_id": burger.pk}, {"option_id": side.pk}, {"option_id": drink.pk}],
        }
    ]
    alone = [{"product_id": menu["juice"].pk, "quantity": 1}]
    responses = _in_parallel(lambda i: place(client_for(terminals[i].user), in_a_combo if i % 2 else alone))

    winners = [r for r in responses if r.status_code == 201]
    losers = [r for r in responses if r.status_code != 201]
    assert len(winners) == 1, [r.status_code for r in responses]
    assert all(r.status_code == 409 and r.json()["code"] == "out_of_stock" for r in losers)
    assert all(r.json()["product_name"] == "Suco" for r in losers)
    assert Product.objects.get(pk=menu["juice"].pk).stock == 0
    sold_in_combo = winners[0].json()["items"][0]["product_id"] == combo.pk
    assert Product.objects.get(pk=fries.pk).stock == THREADS - (1 if sold_in_combo else 0)
    assert Order.objects.count() == 1


def test_parallel_orders_get_distinct_pickup_numbers(terminal, menu):
    body = [{"product_id": menu["burger"].pk, "quantity": 1}]
    responses = _in_parallel(lambda i: place(client_for(terminal.user), body))
    assert all(r.status_code == 201 for r in responses)
    assert sorted(r.json()["number"] for r in responses) == list(range(1, THREADS + 1))


def test_two_stores_number_their_parallel_orders_each_from_one(menu):
    """Kiosks of two stores placing orders at the same instant: each store's numbers are 1..n, without a gap
    or a duplicate, and neither store's sequence takes numbers from the other's."""
    per_store = THREADS
    stores = [store_named("Loja Norte"), store_named("Loja Sul")]
    terminals = [
        Terminal.objects.create(
            name=f"T{i}",
            store=stores[i % 2],
            external_pos_id=f"PAR{i}",
            user=make_user(f"par-{i}", "kiosk"),
        )
        for i in range(per_store * 2)
    ]
    body = [{"product_id": menu["burger"].pk, "quantity": 1}]
    responses = _in_parallel(lambda i: place(client_for(terminals[i].user), body), count=per_store * 2)
    assert [r.status_code for r in responses] == [201] * (per_store * 2)
    for store in stores:
        numbers = sorted(Order.objects.filter(store=store).values_list("number", flat=True))
        assert numbers == list(range(1, per_store + 1)), store.slug
    for response, terminal in zip(responses, terminals, strict=True):
        assert response.json()["store"]["slug"] == terminal.store.slug


def test_parallel_cancels_release_stock_once(terminal, menu):
    order = place(client_for(terminal.user), [{"product_id": menu["juice"].pk, "quantity": 2}]).json()
    _in_parallel(lambda i: order_cancel(order_id=order["id"]))
    assert Product.objects.get(pk=menu["juice"].pk).stock == 3


def test_fifty_concurrent_notifications_change_the_payment_once(terminal, menu, mercadopago):
    """Mercado Pago's duplicates arriving at the same instant: 25 copies of one delivery and 25 distinct
    deliveries about the same order. Exactly one status change, one trip to the kitchen."""
    import json
    import time
    import uuid

    from django.conf import settings
    from django.test import Client

    from payments.models import Payment, PaymentEvent
    from payments.simulator import notify

    kiosk = client_for(terminal.user)
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY="c").json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)
    data_id = payment["provider_order_id"]
    body = json.dumps({"action": "order.processed", "type": "order", "data": {"id": data_id}})
    same_request_id = str(uuid.uuid4())

    def post(i):
        request_id = same_request_id if i < 25 else str(uuid.uuid4())
        ts = str(int(time.time()))
        v1 = notify.sign(data_id=data_id, request_id=request_id, ts=ts, secret=settings.MERCADOPAGO_WEBHOOK_SECRET)
        return Client().post(
            f"/api/v1/webhooks/mercadopago/?data.id={data_id}&type=order",
            body,
            content_type="application/json",
            HTTP_X_REQUEST_ID=request_id,
            HTTP_X_SIGNATURE=f"ts={ts},v1={v1}",
        )

    responses = _in_parallel(post, count=50)
    assert [r.status_code for r in responses] == [200] * 50
    assert Payment.objects.get().status == "pending"  # stored and enqueued: applying is the worker's
    from kiosk.worker import run_pending

    _in_parallel(lambda _: run_pending(), count=10)  # ten workers at once
    stored = Payment.objects.get()
    assert stored.status == "approved"
    changes = PaymentEvent.objects.filter(payment=stored, type="status_changed")
    assert list(changes.values_list("from_status", "to_status")) == [("pending", "approved")]
    assert Order.objects.get(pk=order["id"]).status == "received"
    assert Order.objects.get(pk=order["id"]).received_at is not None


def test_parallel_notification_runners_never_work_on_the_same_delivery(terminal, menu, mercadopago):
    """`process_notifications` from two machines at once: SKIP LOCKED hands each delivery to one runner."""

    from django.utils import timezone

    from payments.models import WebhookDelivery
    from payments.webhooks import deliveries_retry

    past = timezone.now() - datetime.timedelta(minutes=1)
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(topic="order", resource_id=f"ORD{i:026d}", signature_valid=True, next_attempt_at=past)
            for i in range(20)
        ]
    )
    counts = _in_parallel(lambda i: deliveries_retry(limit=100), count=4)
    assert sum(counts) == 20
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {1}
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"ignored"}  # Mercado Pago: unknown


def _paid_order(terminal, menu, mercadopago):
    """An order of 61.70, paid through the simulator; its notification delivered."""
    from payments.models import Payment

    kiosk = client_for(terminal.user)
    order = place(
        kiosk, [{"product_id": menu["burger"].pk, "quantity": 2}, {"product_id": menu["juice"].pk, "quantity": 1}]
    ).json()
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY="c").json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.deliver()
    assert Payment.objects.get(pk=payment["id"]).status == "approved"
    return payment


def _until_mercado_pago_is_done(mercadopago, *, rounds=60):
    """Mercado Pago's clock and our jobs, round after round: it confirms what it took and tells us; two
    reconcile runners at once retry what it said "in progress" about, with the same keys."""
    from django.core.management import call_command

    from payments.models import Refund

    for done_rounds in range(rounds):
        if not Refund.objects.filter(status__in=["requested", "pending"]).exists():
            return done_rounds
        mercadopago.settle()
        Refund.objects.filter(status="requested").update(next_attempt_at=timezone.now())
        _in_parallel(lambda i: call_command("reconcile_payments"), count=2)
    raise AssertionError(f"refunds still open after {rounds} rounds")


def _refund_outcome(payment_id, amount, i):
    from decimal import Decimal

    from kiosk.problems import DomainError
    from payments.gateway import GatewayError
    from payments.services.refunds import refund_request

    try:
        return refund_request(payment_id=payment_id, amount=Decimal(amount), reason=f"r{i}", actor=f"m{i}").status
    except DomainError as exc:
        return exc.code
    except GatewayError:
        return "unavailable"


def test_two_managers_refunding_at_once_cannot_over_refund(terminal, menu, mercadopago):
    """Ten simultaneous refunds of 30.00 on a 61.70 payment: two are taken, never more than was paid."""
    from decimal import Decimal

    from payments.models import Payment, Refund

    payment = _paid_order(terminal, menu, mercadopago)
    outcomes = _in_parallel(lambda i: _refund_outcome(payment["id"], "30.00", i))
    assert outcomes.count("refund_amount_invalid") == 8, outcomes
    assert Refund.objects.exclude(status="failed").count() == 2
    _until_mercado_pago_is_done(mercadopago)
    stored = Payment.objects.get(pk=payment["id"])
    assert stored.refunded_amount() == Decimal("60.00")
    assert Refund.objects.filter(status="succeeded").count() == 2
    assert stored.status == "partially_refunded"


def test_twenty_concurrent_partial_refunds_of_the_same_amount_agree_with_mercado_pago(terminal, menu, mercadopago):
    """20 refunds of 2.00 at the same instant: Mercado Pago takes one, answers refund_in_progress to the
    others (retried later with their own keys) and confirms each later. At the end our ledger's refunded
    total is Mercado Pago's, every refund row carries Mercado Pago's refund id, and the report agrees."""
    from decimal import Decimal

    from payments import reports, selectors
    from payments.models import Payment, PaymentEvent, Refund
    from payments.simulator.models import SimRefund

    payment = _paid_order(terminal, menu, mercadopago)
    outcomes = _in_parallel(lambda i: _refund_outcome(payment["id"], "2.00", i), count=20)
    assert sorted(set(outcomes)) == ["pending", "requested"], outcomes  # taken, or "in progress: later"
    assert Refund.objects.count() == 20
    assert selectors.refundable_amount(Payment.objects.get(pk=payment["id"])) == Decimal("21.70")  # all held

    rounds = _until_mercado_pago_is_done(mercadopago)
    stored = Payment.objects.get(pk=payment["id"])
    processed = SimRefund.objects.filter(payment__order_id=payment["provider_order_id"], status="processed")
    mercado_pago_total = sum((r.amount for r in processed), Decimal("0.00"))
    ledger_total = stored.refunded_amount()
    print(f"\n20 concurrent refunds: first answers {sorted(outcomes)}; settled in {rounds} rounds")
    assert ledger_total == mercado_pago_total == Decimal("40.00")
    assert sorted(Refund.objects.values_list("provider_refund_id", flat=True)) == sorted(
        processed.values_list("id", flat=True)
    )
    assert set(Refund.objects.values_list("status", flat=True)) == {"succeeded"}
    assert PaymentEvent.objects.filter(payment=stored, type="refund_succeeded").count() == 20
    today = timezone.localdate()
    assert reports.sales_summary(start=today, end=today)["refunds"] == ledger_total
    assert stored.status == "partially_refunded"


def _refund_over_the_api(user, payment_id, amount: str, key: str):
    response = client_for(user).post(
        f"/api/v1/payments/{payment_id}/refunds/",
        {"amount": amount, "reason": "cold fries"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    return response.status_code, response.json(), response.get("Idempotent-Replayed")


def test_the_same_refund_sent_ten_times_at_once_with_one_idempotency_key_refunds_once(terminal, menu, mercadopago):
    """A back office double tap, or a proxy retrying: ten copies of one refund request (same key, same body) at
    the same instant. One refund is asked of Mercado Pago; every answer is that refund (202) or "still in
    progress, retry" (409), and a retry afterwards replays it."""
    from decimal import Decimal

    from payments.models import Payment, Refund
    from payments.simulator.models import SimRefund

    boss = make_user("boss", "manager", is_staff=True)
    payment = _paid_order(terminal, menu, mercadopago)
    answers = _in_parallel(lambda i: _refund_over_the_api(boss, payment["id"], "10.00", "same-refund"))

    assert Refund.objects.count() == 1 and SimRefund.objects.count() == 1
    refund = Refund.objects.get()
    for status, body, _ in answers:
        assert status in (202, 409), answers
        if status == 202:
            assert body["refund"]["id"] == refund.pk
        else:
            assert body["code"] == "idempotency_request_in_progress"
    assert any(status == 202 for status, _, _ in answers)
    status, body, replayed = _refund_over_the_api(boss, payment["id"], "10.00", "same-refund")
    assert (status, body["refund"]["id"], replayed) == (202, refund.pk, "true")

    _until_mercado_pago_is_done(mercadopago)
    stored = Payment.objects.get(pk=payment["id"])
    assert stored.refunded_amount() == Decimal("10.00") and stored.status == "partially_refunded"


def test_concurrent_partial_refunds_and_their_retries_never_refund_more_than_was_paid(terminal, menu, mercadopago):
    """Twelve requests at once on a 61.70 payment: six refunds of different sizes (73.00 asked in all), each
    sent twice with its own Idempotency-Key. At most one refund per key, the refunds held never exceed what
    was paid, and what Mercado Pago finally gives back is exactly what our ledger says."""
    from decimal import Decimal

    from payments.models import Payment, Refund
    from payments.simulator.models import SimRefund

    boss = make_user("boss", "manager", is_staff=True)
    payment = _paid_order(terminal, menu, mercadopago)
    amounts = ["20.00", "15.50", "12.00", "9.90", "8.60", "7.00"]
    answers = _in_parallel(
        lambda i: _refund_over_the_api(boss, payment["id"], amounts[i % 6], f"refund-{i % 6}"), count=12
    )
    statuses = sorted(status for status, _, _ in answers)
    assert set(statuses) <= {202, 400, 409}, answers  # taken (or held), more than is left, in progress
    for status, body, _ in answers:
        if status != 202:
            assert body["code"] in ("idempotency_request_in_progress", "refund_amount_invalid"), body

    per_key = Refund.objects.values_list("request_key", flat=True)
    assert len(per_key) == len(set(per_key))  # never two refunds for one key
    held = sum(Refund.objects.exclude(status="failed").values_list("amount", flat=True), Decimal("0.00"))
    assert Decimal("0.00") < held <= Decimal("61.70")

    _until_mercado_pago_is_done(mercadopago)
    stored = Payment.objects.get(pk=payment["id"])
    given_back = sum(SimRefund.objects.filter(status="processed").values_list("amount", flat=True), Decimal("0.00"))
    print(f"\n12 concurrent refund requests (6 keys): answers {statuses}; refunded {given_back} of 61.70")
    assert stored.refunded_amount() == given_back == held <= Decimal("61.70")
    assert SimRefund.objects.count() == Refund.objects.exclude(status="failed").count()


def test_an_endpoint_deleted_while_an_order_is_placed_does_not_fail_the_order(terminal, menu, monkeypatch):
    """A manager deletes a webhook endpoint between the moment an event picks its subscribers and the moment
    it writes their deliveries: the customer's order is placed all the same, with no delivery to the gone."""
    from kiosk.events.endpoints import endpoint_delete
    from kiosk.events.models import Event, EventDelivery, WebhookEndpoint

    hook = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", events=["*"])
    original = WebhookEndpoint.wants
    deleted = []

    def wants_then_vanishes(self, event_type):
        if not deleted:  # another connection deletes it now, and commits
            worker = threading.Thread(target=lambda: (endpoint_delete(endpoint_id=self.pk), connection.close()))
            worker.start()
            worker.join()
            deleted.append(self.pk)
        return original(self, event_type)

    monkeypatch.setattr(WebhookEndpoint, "wants", wants_then_vanishes)
    response = place(client_for(terminal.user), [{"product_id": menu["burger"].pk, "quantity": 1}])
    assert response.status_code == 201, response.content
    assert deleted == [hook.pk] and not WebhookEndpoint.objects.exists()
    assert Event.objects.filter(order_id=response.json()["id"], type="order.placed").exists()
    assert not EventDelivery.objects.exists()
