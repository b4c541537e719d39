"""Faults, each a test (issue 13): the bad days a payment back end must live through, and what the people
involved see of them. For each: nothing lost, nothing doubled, a clear answer, a log line, and a record
(the payment's ledger when there is a payment; the notification inbox, WebhookDelivery, when there is none
we may trust; nothing at all when the database itself is gone: the log line is then the record).

The whole list; a fault proven elsewhere names the test that proves it.

The database goes away mid-request
- while an order is placed: 503 database_unavailable, no order, stock untouched, the retry with the same
  Idempotency-Key places it once ................................ test_the_database_going_away_mid_order_*
- while Mercado Pago's QR answer is recorded: 503, the retry makes no second QR order at Mercado Pago
  ................................................................ test_the_database_going_away_after_*
- readiness fails (liveness does not) ........................... test_readyz_fails_while_the_database_is_away
- lock contention (deadlock, lock wait) is a retryable 503 ...... tests/test_platform.py::test_lock_contention_*
- the notification URL cannot store a delivery: 503 not_stored (Mercado Pago re-sends it)
  ................................................................ test_a_notification_that_cannot_be_stored_*
- or stores it but cannot queue its task: 503, the re-send is a copy, the sweep applies it once
  ................................................................ test_a_notification_stored_but_not_queued_*

Money with concurrency (MariaDB's row locks)
- partial refunds at once never hold or give back more than was paid; the same Idempotency-Key sent ten times
  at once refunds once ... tests/test_concurrency.py::test_concurrent_partial_refunds_and_their_retries_*,
  ::test_the_same_refund_sent_ten_times_at_once_*, ::test_two_managers_refunding_at_once_cannot_over_refund;
  in any order, one at a time: tests/test_money_properties.py (hypothesis)

Mercado Pago (live mode: the official SDK over real HTTP to a double of Mercado Pago)
- times out, answers 5xx, malformed JSON or a body that is no JSON object, on QR creation: 503, the payment
  waits with its error and a qr_failed line, the retry sends the same key ... test_checkout_when_mercado_pago_*
- the same, while a notification is applied: the delivery waits and is applied once later
  ................................................................ test_a_notification_applied_when_mercado_pago_*
- the same, on a refund: 503, the refund held (reserved) with a refund_retry line, the retry with the same
  Idempotency-Key continues it ................................... test_a_refund_when_mercado_pago_*
- answers a QR order for another amount: never shown, cancelled there, 502 ... test_a_qr_for_another_amount_*
- a paid amount other than the order's: held for review, never to the kitchen
  ... tests/test_payments_notifications.py::test_a_wrong_amount_is_under_review_for_the_kiosk_never_approved
  (absurd amounts: tests/test_payments_hostile.py::test_an_absurd_paid_amount_is_held_for_review_*)
- a refund of another amount than asked: recorded as Mercado Pago made it, flagged for review
  ................................................................ test_a_refund_read_back_for_another_amount_*
  for more than is left of the payment: not believed, ours kept, flagged once ... test_a_refund_read_back_for_more_*
- retries, the circuit breaker, no call inside a transaction ..... tests/test_gateway_resilience.py

The worker is killed mid-task
- before it applied a notification: the task is queued again and applied once ... test_a_worker_killed_before_*
- after it applied it, before it said so: run again, nothing doubled ........... test_a_worker_killed_after_*
- after Mercado Pago took a refund, before it was recorded: one refund ....... test_a_worker_killed_between_*
- as a process (SIGKILL), and a task that kills its worker every time
  ... tests/test_worker.py::test_a_worker_killed_mid_task_loses_nothing, ::test_a_task_that_keeps_killing_*

A notification
- for an order that does not exist: acknowledged, ignored, logged ... test_a_notification_for_an_order_*
- twice: tests/test_payments_notifications.py::test_duplicates_change_the_status_once, and at the same instant
  tests/test_concurrency.py::test_fifty_concurrent_notifications_change_the_payment_once
- forged: tests/test_payments_webhooks.py::test_forgeries_never_take_the_place_of_the_genuine_notification,
  ::test_unsigned_order_shaped_requests_are_401_and_never_make_us_call_mercado_pago
- replayed a day later (old ts) ................................... test_a_notification_replayed_a_day_later_*
- oversized ........................................................ test_an_oversized_notification_*
- bytes that are not UTF-8 text .................................... test_a_notification_that_is_not_text_*
- a signed body that is not JSON ................................... test_a_signed_notification_that_is_not_json_*
"""

import datetime
import hashlib
import hmac
import json
import logging
import re
import time
import types
import uuid
from contextlib import contextmanager
from decimal import Decimal
from unittest import mock

import pytest
from django.conf import settings
from django.db import DatabaseError, OperationalError
from django.db.backends.utils import CursorWrapper
from django.test import Client
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from mercadopago.webhook import WebhookSignatureValidator
from mercadopago.webhook.validator import _build_manifest as sdk_manifest

from kiosk.events.models import Event as DomainEvent
from kiosk.models import IdempotencyRecord
from kiosk.worker import recover_abandoned, run_pending
from orders.models import Order, Product
from payments import tasks
from payments import webhooks as webhooks_module
from payments.models import Payment, PaymentEvent, Refund, WebhookDelivery
from payments.services import refunds as refund_services
from payments.simulator import notify
from payments.simulator.models import SimOrder, SimRefund
from tests.conftest import new_key, place

URL = "/api/v1/webhooks/mercadopago/"
PROBLEM = "application/problem+json"
transactional = pytest.mark.django_db(transaction=True)


def ledger(payment) -> list[str]:
    return list(PaymentEvent.objects.filter(payment=payment).order_by("id").values_list("type", flat=True))


def logged(caplog, pattern: str, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level and re.search(pattern, r.getMessage())]


def signed(data_id: str, *, request_id: str | None = None, ts: int | None = None) -> dict:
    """x-signature headers as Mercado Pago's SDKs sign them (manifest with data.id as received), checked by
    the official SDK's own validator before use, so they do not merely agree with our code."""
    request_id = request_id or str(uuid.uuid4())
    ts = str(int(time.time()) if ts is None else ts)
    secret = settings.MERCADOPAGO_WEBHOOK_SECRET
    v1 = hmac.new(secret.encode(), sdk_manifest(data_id, request_id, ts).encode(), hashlib.sha256).hexdigest()
    WebhookSignatureValidator.validate(f"ts={ts},v1={v1}", request_id, data_id, secret)  # raises if not the SDK's
    return {"HTTP_X_SIGNATURE": f"ts={ts},v1={v1}", "HTTP_X_REQUEST_ID": request_id}


def notify_url(data_id: str) -> str:
    return f"{URL}?data.id={data_id}&type=order"


# --- The database goes away -----------------------------------------------------------------------


@contextmanager
def database_goes_away(matches, *, times: int = 1):
    """The next `times` statements whose SQL `matches` fail as a lost MySQL connection does (2006); the
    statements before them ran, so the failure comes mid-request. Yields the failed statements."""
    original = CursorWrapper._execute
    failed: list[str] = []

    def execute(self, sql, params, *args):
        if len(failed) < times and matches(sql):
            failed.append(sql)
            raise OperationalError(2006, "MySQL server has gone away")
        return original(self, sql, params, *args)

    with mock.patch.object(CursorWrapper, "_execute", execute):
        yield failed


def _inserts_into(table: str):
    pattern = re.compile(rf"^\s*INSERT INTO [`\"]?{table}[`\"]?\s", re.IGNORECASE)
    return lambda sql: bool(pattern.match(sql))


@transactional
def test_the_database_going_away_mid_order_is_a_503_and_leaves_nothing_half_written(kiosk, menu, caplog):
    body = [{"product_id": menu["burger"].pk, "quantity": 1}, {"product_id": menu["juice"].pk, "quantity": 2}]
    with database_goes_away(_inserts_into("orders_orderitem")) as failed:
        response = place(kiosk, body, key="order-1")
    assert failed, "the order's items were never written"
    assert (response.status_code, response["Content-Type"]) == (503, PROBLEM)
    assert response.json()["code"] == "database_unavailable" and response["Retry-After"] == "5"
    assert "same Idempotency-Key" in response.json()["detail"]
    # The order, its stock reservation, its domain event and the key's record went back together.
    assert not Order.objects.exists()
    assert Product.objects.get(pk=menu["juice"].pk).stock == 3
    assert not DomainEvent.objects.exists() and not IdempotencyRecord.objects.exists()
    assert logged(caplog, r"database unavailable in OrderListView|database unavailable in \w+: OperationalError")

    retry = place(kiosk, body, key="order-1")
    assert retry.status_code == 201, retry.json()
    assert Order.objects.count() == 1 and Product.objects.get(pk=menu["juice"].pk).stock == 1


@transactional
def test_the_database_going_away_after_mercado_pago_answered_makes_no_second_qr(kiosk, order, mercadopago, caplog):
    """Mercado Pago made the QR order, then our database went away while its answer was recorded: the kiosk
    gets a 503; the retry asks Mercado Pago again with the same key and gets the same QR order."""
    url = f"/api/v1/orders/{order['id']}/checkout/"
    updates_payment = re.compile(r"^\s*UPDATE [`\"]?payments_payment[`\"]?\s", re.IGNORECASE)
    with database_goes_away(lambda sql: bool(updates_payment.match(sql))) as failed:
        response = kiosk.post(url, HTTP_IDEMPOTENCY_KEY="checkout-1")
    assert failed and (response.status_code, response.json()["code"]) == (503, "database_unavailable")
    payment = Payment.objects.get()
    assert (payment.status, payment.provider_order_id, payment.qr_data) == ("pending", None, "")
    assert ledger(payment) == ["created"]  # the answer's ledger line went back with the rest
    assert SimOrder.objects.count() == 1  # Mercado Pago did make it
    assert logged(caplog, r"database unavailable in CheckoutView", logging.ERROR)

    retry = kiosk.post(url, HTTP_IDEMPOTENCY_KEY="checkout-1")
    assert retry.status_code == 201, retry.json()
    assert retry.json()["payment"]["id"] == payment.pk
    assert retry.json()["payment"]["provider_order_id"] == SimOrder.objects.get().id
    assert SimOrder.objects.count() == 1 and Payment.objects.count() == 1
    assert ledger(payment) == ["created", "qr_created"]


@pytest.mark.django_db
def test_readyz_fails_while_the_database_is_away(client):
    with database_goes_away(lambda sql: True, times=100):
        ready = client.get("/readyz")
        alive = client.get("/healthz")
    assert (ready.status_code, ready["Content-Type"], ready.json()["code"]) == (503, PROBLEM, "database_unavailable")
    assert alive.status_code == 200  # the process is alive: restarting it would not bring the database back
    back = client.get("/readyz")  # a database without time zone tables is not ready either: another code
    assert back.status_code == 200 or back.json()["code"] != "database_unavailable"


@pytest.mark.django_db
def test_a_notification_that_cannot_be_stored_is_a_503_for_mercado_pago_to_send_again(mercadopago, caplog):
    data_id = "ORD01AAAAAAAAAAAAAAAAAAAAAAA"
    with database_goes_away(_inserts_into("payments_webhookdelivery")):
        response = Client().post(notify_url(data_id), "{}", content_type="application/json", **signed(data_id))
    assert (response.status_code, response.json()["code"]) == (503, "not_stored")
    assert logged(caplog, "could not store a Mercado Pago notification", logging.ERROR)
    assert not WebhookDelivery.objects.exists()
    again = Client().post(notify_url(data_id), "{}", content_type="application/json", **signed(data_id))
    assert again.status_code == 200 and WebhookDelivery.objects.count() == 1


@transactional
def test_a_notification_stored_but_not_queued_is_answered_503_and_applied_once(kiosk, order, mercadopago, caplog):
    """The database goes away between storing a delivery and queueing its task: Mercado Pago gets a 503 and
    sends the notification again (a copy: ignored); the sweep applies the stored one, once."""
    from django.core.management import call_command

    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)
    data_id = payment["provider_order_id"]
    body = json.dumps({"id": 123456789, "type": "order", "action": "order.processed", "data": {"id": data_id}})
    with database_goes_away(_inserts_into(DBTaskResult._meta.db_table)):
        first = Client().post(notify_url(data_id), body, content_type="application/json", **signed(data_id))
    assert (first.status_code, first.json().get("code")) == (503, "not_stored"), first.json()
    assert logged(caplog, "could not store a Mercado Pago notification", logging.ERROR)
    again = Client().post(notify_url(data_id), body, content_type="application/json", **signed(data_id))
    assert again.status_code == 200
    run_pending()
    assert list(WebhookDelivery.objects.order_by("id").values_list("status", flat=True)) == ["pending", "ignored"]
    assert Payment.objects.get().status == "pending"

    WebhookDelivery.objects.update(received_at=timezone.now() - datetime.timedelta(minutes=1))
    call_command("process_notifications")  # the sweep, every 30 s on the worker's schedule
    call_command("process_notifications")
    stored = Payment.objects.get()
    assert stored.status == "approved" and Order.objects.get(pk=order["id"]).status == "received"
    assert ledger(stored).count("status_changed") == 1 and ledger(stored).count("notification_received") == 1


# --- Mercado Pago misbehaves: a double of it over real HTTP (tests/mercadopago_double.py) ----------


FAULTS = {
    "timeout": "timeout",
    "500": (500, {"errors": [{"code": "internal_error", "message": "boom"}]}),
    "503": (503, b"<html><body>Service Unavailable</body></html>"),
    "malformed_json": (200, b'{"id": "ORD01K3", "status": '),
    "not_an_object": (200, ["ORD01K3"]),
}
ORDER_ID = "ORD01K372G4J4FXZ9HGHZMJMGGPKE"
PAY_ID = "PAY01K372G4J4FXZ9HGHZMKWSQS20"


def created(request, **changes) -> tuple[int, dict]:
    """Mercado Pago's answer to a QR order creation, for what was asked (with `changes`)."""
    asked = request["body"]
    answer = {
        "id": ORDER_ID,
        "type": "qr",
        "external_reference": asked["external_reference"],
        "total_amount": asked["total_amount"],
        "status": "created",
        "status_detail": "created",
        "transactions": {"payments": [{"id": PAY_ID, "amount": asked["total_amount"], "status": "created"}]},
        "type_response": {"qr_data": "00020101021226580014br.gov.bcb.pix0136"},
    }
    return 201, {**answer, **changes}


def processed(amount: str, **refunds) -> dict:
    """The order as Mercado Pago reads it back once paid (`refunds`: its refund transactions)."""
    return {
        "id": ORDER_ID,
        "status": "processed",
        "status_detail": "accredited",
        "total_amount": amount,
        "total_paid_amount": amount,
        "transactions": {
            "payments": [{"id": PAY_ID, "amount": amount, "paid_amount": amount, "status": "processed"}],
            **refunds,
        },
    }


@pytest.mark.django_db
@pytest.mark.parametrize("fault", FAULTS)
def test_checkout_when_mercado_pago_fails_is_a_503_and_the_retry_makes_one_qr(double, kiosk, order, fault, caplog):
    double.script[:] = [FAULTS[fault], FAULTS[fault]]  # the try and its one retry
    url = f"/api/v1/orders/{order['id']}/checkout/"
    response = kiosk.post(url, HTTP_IDEMPOTENCY_KEY=new_key())
    assert (response.status_code, response["Content-Type"]) == (503, PROBLEM)
    assert response.json()["code"] == "payment_provider_unavailable" and int(response["Retry-After"]) >= 1
    payment = Payment.objects.get()
    assert (payment.status, payment.provider_order_id, payment.qr_data) == ("pending", None, "")
    assert payment.last_error and ledger(payment) == ["created", "qr_failed"]
    assert logged(caplog, r"create QR order: .*\(attempt 2 of 2\)")
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"

    double.script[:] = [created]
    retry = kiosk.post(url, HTTP_IDEMPOTENCY_KEY=new_key())
    assert retry.status_code == 201, retry.json()
    assert (retry.json()["payment"]["id"], retry.json()["payment"]["provider_order_id"]) == (payment.pk, ORDER_ID)
    # Every attempt asked for the same QR order (same idempotency key): Mercado Pago made at most one.
    assert {r["key"] for r in double.requests} == {payment.reference} and len(double.requests) == 3
    assert Payment.objects.count() == 1


@transactional
def test_a_qr_for_another_amount_is_never_shown_and_is_cancelled_at_mercado_pago(double, kiosk, order, caplog):
    """Mercado Pago answers the creation with an order for 6.17 instead of 61.70: a customer must never see
    that QR. It is given up (and cancelled at Mercado Pago by the worker); the next checkout makes a new one."""
    double.script[:] = [
        lambda request: created(
            request, total_amount="6.17", transactions={"payments": [{"id": PAY_ID, "amount": "6.17"}]}
        )
    ]
    url = f"/api/v1/orders/{order['id']}/checkout/"
    response = kiosk.post(url, HTTP_IDEMPOTENCY_KEY=new_key())
    assert (response.status_code, response.json()["code"]) == (502, "payment_provider_error")
    assert "6.17" in response.json()["detail"] and "qr_data" not in response.content.decode()
    assert response.json()["provider_code"] == "answer_mismatch"
    given_up = Payment.objects.get()
    assert (given_up.status, given_up.provider_order_id, given_up.qr_data) == ("cancelled", ORDER_ID, "")
    assert ledger(given_up) == ["created", "qr_failed", "status_changed"]
    assert logged(caplog, rf"payment {given_up.pk}: create QR order: .* total_amount '6.17'", logging.ERROR)
    polled = kiosk.get(f"/api/v1/orders/{order['id']}/payment/").json()["payment"]
    assert (polled["status"], polled["qr_data"]) == ("cancelled", None)

    double.script[:] = [(200, {**processed("6.17"), "status": "canceled", "status_detail": "canceled"})]
    run_pending()  # the worker cancels it at Mercado Pago
    assert (double.requests[-1]["method"], double.requests[-1]["path"]) == ("POST", f"/v1/orders/{ORDER_ID}/cancel")

    double.script[:] = [lambda request: created(request, id="ORD01K372G4J4FXZ9HGHZMJMGGPKF")]
    again = kiosk.post(url, HTTP_IDEMPOTENCY_KEY=new_key())
    assert again.status_code == 201, again.json()
    fresh = Payment.objects.get(pk=again.json()["payment"]["id"])
    assert fresh.pk != given_up.pk and fresh.reference != given_up.reference and fresh.qr_data
    assert double.requests[-1]["body"]["total_amount"] == "61.70"


@pytest.mark.django_db
@pytest.mark.parametrize("transactions", [[], "none", {"payments": {"id": PAY_ID}}, {"payments": [None]}])
def test_a_qr_answer_with_odd_transactions_is_still_shown_when_it_is_ours(double, kiosk, order, transactions):
    """Mercado Pago's order for our amount with a QR, its transactions in an unexpected shape: the QR is
    ours and shown (the payment's id is learnt later, from the order read back); never a 500."""
    double.script[:] = [lambda request: created(request, transactions=transactions)]
    response = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key())
    assert response.status_code == 201, response.json()
    payment = Payment.objects.get()
    assert (payment.provider_order_id, payment.provider_payment_id, bool(payment.qr_data)) == (ORDER_ID, "", True)


@pytest.fixture
def qr_payment(order):
    """The order's QR payment as checkout left it: Mercado Pago's order ORDER_ID, not paid yet."""
    return Payment.objects.create(
        order_id=order["id"], amount=Decimal(order["total"]), provider_order_id=ORDER_ID, provider_payment_id=PAY_ID
    )


@transactional
@pytest.mark.parametrize("fault", ["timeout", "503", "malformed_json", "not_an_object"])
def test_a_notification_applied_when_mercado_pago_fails_waits_and_is_applied_once(double, qr_payment, fault, caplog):
    from django.core.management import call_command

    double.script[:] = [FAULTS[fault], FAULTS[fault]]
    response = Client().post(
        notify_url(ORDER_ID),
        json.dumps({"type": "order", "action": "order.processed"}),
        content_type="application/json",
        **signed(ORDER_ID),
    )
    assert response.status_code == 200  # stored: Mercado Pago is answered at once, whatever happens next
    run_pending()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1) and delivery.next_attempt_at > timezone.now()
    assert f"get order {ORDER_ID}" in delivery.last_error
    assert logged(caplog, rf"notification {delivery.pk} not applied yet .* retry in 30s")
    assert Payment.objects.get().status == "pending" and ledger(qr_payment) == []

    double.script[:] = [(200, processed("61.70"))]
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    call_command("process_notifications")
    call_command("process_notifications")  # nothing left to do: nothing done twice
    assert WebhookDelivery.objects.get().status == "processed"
    assert Payment.objects.get().status == "approved"
    assert Order.objects.get(pk=qr_payment.order_id).status == "received"
    assert ledger(qr_payment) == ["status_changed", "notification_received"]


@pytest.fixture
def paid_payment(qr_payment):
    Payment.objects.filter(pk=qr_payment.pk).update(
        status="approved", paid_amount=qr_payment.amount, paid_at=timezone.now(), settles=qr_payment.order_id
    )
    return Payment.objects.get(pk=qr_payment.pk)


def refund_answer(amount: str, status: str = "processing") -> dict:
    refund = {"id": "REF01K372H0000000000000000AB", "transaction_id": PAY_ID, "amount": amount, "status": status}
    return {"id": ORDER_ID, "status": "processed", "transactions": {"refunds": [refund]}}


@pytest.mark.django_db
@pytest.mark.parametrize("fault", ["timeout", "503", "malformed_json"])
def test_a_refund_when_mercado_pago_fails_is_held_and_the_same_key_continues_it(
    double, paid_payment, manager, fault, caplog, migration_data
):
    url = f"/api/v1/payments/{paid_payment.pk}/refunds/"
    body = {"amount": "10.00", "reason": "cold fries"}
    double.script[:] = [FAULTS[fault], FAULTS[fault]]
    response = manager.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="refund-1")
    assert (response.status_code, response.json()["code"]) == (503, "payment_provider_unavailable")
    held = Refund.objects.get()
    assert (response.json()["refund_id"], held.status, held.amount) == (held.pk, "requested", Decimal("10.00"))
    assert ledger(paid_payment) == ["refund_requested", "refund_retry"]
    assert logged(caplog, rf"refund order {ORDER_ID}: .*\(attempt 2 of 2\)")
    from payments.selectors import refundable_amount

    assert refundable_amount(paid_payment) == Decimal("51.70")  # reserved while Mercado Pago has not answered

    double.script[:] = [(201, refund_answer("10.00"))]
    retry = manager.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="refund-1")
    assert retry.status_code == 202, retry.json()
    assert (retry.json()["refund"]["id"], retry.json()["refund"]["status"]) == (held.pk, "pending")
    assert Refund.objects.count() == 1
    assert {r["key"] for r in double.requests} == {held.idempotency_key}  # every attempt: the same refund
    assert {json.dumps(r["body"]) for r in double.requests} == {
        json.dumps({"transactions": [{"id": PAY_ID, "amount": "10.00"}]})
    }


@pytest.mark.django_db
def test_a_refund_read_back_for_another_amount_is_recorded_as_made_and_flagged(double, paid_payment, caplog):
    """Asked 10.00, Mercado Pago says it refunds 12.00: the books follow Mercado Pago (the money it moves),
    and a person is asked to look."""
    double.script[:] = [(201, refund_answer("12.00"))]
    refund = refund_services.refund_request(
        payment_id=paid_payment.pk, amount=Decimal("10.00"), reason="cold fries", actor="boss"
    )
    assert (refund.status, refund.amount) == ("pending", Decimal("12.00"))
    paid_payment.refresh_from_db()
    assert paid_payment.needs_review and "pediu 10.00; o Mercado Pago estornou 12.00" in paid_payment.review_reason
    assert ledger(paid_payment) == ["refund_requested", "refund_accepted", "review_flagged"]
    accepted = PaymentEvent.objects.get(payment=paid_payment, type="refund_accepted")
    assert accepted.amount == Decimal("12.00")
    assert logged(caplog, rf"payment {paid_payment.pk} flagged for review: Refund {refund.pk} asked for 10.00")

    double.script[:] = [
        (200, processed("61.70", refunds=[refund_answer("12.00", "processed")["transactions"]["refunds"][0]]))
    ]
    from payments.services.reconcile import payments_reconcile

    Payment.objects.filter(pk=paid_payment.pk).update(updated_at=timezone.now() - datetime.timedelta(minutes=5))
    payments_reconcile()
    paid_payment.refresh_from_db()
    assert (paid_payment.status, paid_payment.refunded_amount()) == ("partially_refunded", Decimal("12.00"))


@pytest.mark.django_db
def test_a_refund_read_back_for_more_than_was_paid_is_not_believed(double, paid_payment, caplog):
    """Asked 10.00 of a 61.70 payment, Mercado Pago's answers say 100.00: no refund can give back more than
    was paid, so the answer is not believed. Our 10.00 stays in the books, and a person is asked, once."""
    from payments.services.reconcile import payments_reconcile

    double.script[:] = [(201, refund_answer("100.00"))]
    refund = refund_services.refund_request(
        payment_id=paid_payment.pk, amount=Decimal("10.00"), reason="cold fries", actor="boss"
    )
    assert (refund.status, refund.amount) == ("pending", Decimal("10.00"))
    assert logged(caplog, rf"flagged for review: Refund {refund.pk} asked for 10.00; .* reports 100.00, more than")

    line = refund_answer("100.00", "processed")["transactions"]["refunds"][0]
    for _ in range(2):  # read back twice (a notification, then reconcile): one flag
        double.script[:] = [(200, processed("61.70", refunds=[line]))]
        Payment.objects.filter(pk=paid_payment.pk).update(updated_at=timezone.now() - datetime.timedelta(hours=7))
        payments_reconcile()
    paid_payment.refresh_from_db()
    assert Refund.objects.get().status == "succeeded" and Refund.objects.get().amount == Decimal("10.00")
    assert (paid_payment.status, paid_payment.refunded_amount()) == ("partially_refunded", Decimal("10.00"))
    assert paid_payment.needs_review and paid_payment.review_reason.count("mais que os 61.70 que restam") == 1


@pytest.mark.django_db
def test_a_panel_refund_reported_for_more_than_was_paid_is_booked_at_what_was_left(double, paid_payment, caplog):
    """A refund made in Mercado Pago's panel, reported for 100.00 of a 61.70 payment: the books take at most
    the 61.70 left, and a person is asked to look, once however often it is read back."""
    from payments.services.reconcile import payments_reconcile

    line = refund_answer("100.00", "processed")["transactions"]["refunds"][0]
    for _ in range(2):
        double.script[:] = [(200, processed("61.70", refunds=[line]))]
        Payment.objects.filter(pk=paid_payment.pk).update(updated_at=timezone.now() - datetime.timedelta(hours=7))
        payments_reconcile()
    paid_payment.refresh_from_db()
    refund = Refund.objects.get()
    assert (refund.requested_by, refund.amount, refund.status) == ("mercadopago", Decimal("61.70"), "succeeded")
    assert paid_payment.refunded_amount() == Decimal("61.70")
    assert PaymentEvent.objects.get(payment=paid_payment, type="refund_accepted").amount == Decimal("61.70")
    assert paid_payment.needs_review and paid_payment.review_reason.count("mais que os 61.70 que restam") == 1
    assert logged(caplog, rf"payment {paid_payment.pk} flagged for review: Mercado Pago reports refund .* of 100.00")


# --- The worker is killed mid-task ----------------------------------------------------------------


def _abandon(task_path: str) -> DBTaskResult:
    """The task's row as a worker killed while running it leaves it: RUNNING, its worker silent since."""
    row = DBTaskResult.objects.get(task_path=task_path, status=TaskResultStatus.READY)
    long_ago = timezone.now() - datetime.timedelta(seconds=settings.WORKER_STALE_SECONDS + 60)
    DBTaskResult.objects.filter(pk=row.pk).update(
        status=TaskResultStatus.RUNNING, started_at=long_ago, worker_ids=["worker-killed"]
    )
    return row


@transactional
def test_a_worker_killed_before_applying_a_notification_loses_nothing(kiosk, order, mercadopago, caplog):
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    notify.send_due(everything=True)  # stored and enqueued; the worker that claimed it dies at once
    row = _abandon("payments.tasks.process_notification")

    assert recover_abandoned() == 1
    assert logged(caplog, rf"task {row.pk} payments.tasks.process_notification abandoned by worker .* queued again")
    run_pending()
    stored = Payment.objects.get()
    assert stored.status == "approved" and Order.objects.get(pk=order["id"]).status == "received"
    assert ledger(stored) == ["created", "qr_created", "status_changed", "notification_received"]
    assert DBTaskResult.objects.get(pk=row.pk).status == TaskResultStatus.SUCCESSFUL


@transactional
def test_a_worker_killed_after_applying_a_notification_doubles_nothing(kiosk, order, mercadopago, caplog):
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    notify.send_due(everything=True)
    row = _abandon("payments.tasks.process_notification")
    webhooks_module.delivery_run(WebhookDelivery.objects.get().pk)  # its work was done; the kill came next
    stored = Payment.objects.get()
    events, calls = ledger(stored), len(mercadopago.calls)

    assert recover_abandoned() == 1
    run_pending()
    assert DBTaskResult.objects.get(pk=row.pk).return_value == "not pending (done, or in another runner's hands)"
    assert ledger(stored) == events and len(mercadopago.calls) == calls
    assert Order.objects.get(pk=order["id"]).status == "received"


class Killed(BaseException):
    """SIGKILL, as far as the code running is concerned: nothing after it runs, nothing catches it."""


@transactional
def test_a_worker_killed_between_mercado_pagos_refund_and_its_record_refunds_once(
    kiosk, order, mercadopago, monkeypatch, caplog
):
    """Money for a cancelled order is refunded automatically. The worker asks Mercado Pago, which makes the
    refund, and is killed before it records the answer: the task runs again and finds that same refund."""
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    assert kiosk.post(f"/api/v1/orders/{order['id']}/cancel/").status_code == 200
    run_pending(limit=1)  # cancelling the QR finds it paid: the automatic refund is enqueued
    row = _abandon("payments.tasks.refund_automatically")

    record = refund_services._record_answer
    monkeypatch.setattr(refund_services, "_record_answer", mock.Mock(side_effect=Killed))
    with pytest.raises(Killed):
        tasks.refund_automatically.func(payment["id"])  # what the killed worker got through
    assert SimRefund.objects.count() == 1 and Refund.objects.get().status == "requested"
    monkeypatch.setattr(refund_services, "_record_answer", record)

    assert recover_abandoned() == 1
    run_pending()
    assert DBTaskResult.objects.get(pk=row.pk).status == TaskResultStatus.SUCCESSFUL
    refund = Refund.objects.get()
    assert (refund.status, refund.provider_refund_id) == ("pending", SimRefund.objects.get().id)
    assert SimRefund.objects.count() == 1
    stored = Payment.objects.get()
    assert ledger(stored).count("refund_requested") == 1 and ledger(stored).count("refund_accepted") == 1
    mercadopago.settle()
    stored.refresh_from_db()
    assert (stored.status, stored.refunded_amount()) == ("refunded", Decimal("61.70"))


# --- Notifications that are not what they should be -----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("data_id", ["ORD01AAAAAAAAAAAAAAAAAAAAAAA", "ORD-bogus", "12345"])
def test_a_notification_for_an_order_that_does_not_exist_is_acknowledged_and_ignored(mercadopago, data_id, caplog):
    body = json.dumps({"type": "order", "action": "order.processed"})
    response = Client().post(notify_url(data_id), body, content_type="application/json", **signed(data_id))
    assert response.status_code == 200  # genuine: Mercado Pago must not send it again
    run_pending()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "ignored" and delivery.last_error
    assert logged(caplog, rf"notification {delivery.pk} ignored: .*{re.escape(data_id)}", logging.INFO)
    assert not PaymentEvent.objects.exists() and not Payment.objects.exists()


@transactional
@pytest.mark.parametrize("tolerance", [0, 600])
def test_a_notification_replayed_a_day_later_changes_nothing(kiosk, order, mercadopago, settings, tolerance, caplog):
    """A genuine notification, captured and sent again a day later with its headers. With the ts window off
    (the default: Mercado Pago re-sends for days) it is a duplicate; with it on, a stale signature."""
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)
    data_id = payment["provider_order_id"]
    a_day_ago = int(time.time()) - 86_400
    headers = signed(data_id, ts=a_day_ago)
    body = json.dumps({"type": "order", "action": "order.processed", "data": {"id": data_id}})
    settings.MERCADOPAGO_SIGNATURE_TOLERANCE = tolerance
    with mock.patch.object(webhooks_module, "time", types.SimpleNamespace(time=lambda: a_day_ago + 1)):
        first = Client().post(notify_url(data_id), body, content_type="application/json", **headers)
    assert first.status_code == 200
    run_pending()
    stored = Payment.objects.get()
    assert stored.status == "approved"
    events, calls = ledger(stored), len(mercadopago.calls)

    replay = Client().post(notify_url(data_id), body, content_type="application/json", **headers)
    run_pending()
    last = WebhookDelivery.objects.order_by("-id").first()
    if tolerance:
        assert (replay.status_code, replay.json()["code"]) == (401, "invalid_signature")
        assert last.status == "rejected" and "outside the accepted window" in last.signature_error
        assert logged(caplog, rf"notification {last.pk} rejected: x-signature ts is outside the accepted window")
    else:
        assert replay.status_code == 200
        assert (last.status, last.last_error) == ("ignored", f"duplicate of delivery {last.pk - 1}")
        assert logged(caplog, rf"notification {last.pk} ignored: a copy of delivery {last.pk - 1}", logging.INFO)
    assert ledger(stored) == events and len(mercadopago.calls) == calls  # not even a read of the order


@transactional
def test_an_oversized_notification_is_refused_unread_and_unstored(kiosk, order, mercadopago, caplog):
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)
    data_id = payment["provider_order_id"]
    calls = len(mercadopago.calls)
    huge = json.dumps({"type": "order", "padding": "x" * settings.API_MAX_BODY_BYTES})
    response = Client().post(notify_url(data_id), huge, content_type="application/json", **signed(data_id))
    assert (response.status_code, response["Content-Type"], response.json()["code"]) == (
        413,
        PROBLEM,
        "payload_too_large",
    )
    assert logged(caplog, rf"request body of {len(huge)} bytes refused on mercadopago-webhook from 127\.0\.0\.1")
    assert not WebhookDelivery.objects.exists() and len(mercadopago.calls) == calls
    assert Payment.objects.get().status == "pending"
    small = json.dumps({"type": "order", "action": "order.processed"})
    assert (
        Client().post(notify_url(data_id), small, content_type="application/json", **signed(data_id)).status_code == 200
    )
    run_pending()
    assert Payment.objects.get().status == "approved"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{}",
        b'{"action": "\xed\xa0\x80"}',  # a lone surrogate, encoded
        b'{"type": "order", "action": "\\ud800"}',  # a lone surrogate, escaped
    ],
)
def test_a_notification_that_is_not_text_is_stored_escaped_and_answered_400(mercadopago, body, caplog):
    data_id = "ORD01AAAAAAAAAAAAAAAAAAAAAAA"
    response = Client().post(notify_url(data_id), body, content_type="application/json", **signed(data_id))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_body")
    stored = WebhookDelivery.objects.get()
    assert stored.status == "rejected" and stored.body_size == len(body)
    stored.body.encode("utf-8")  # storable text
    assert logged(caplog, rf"notification {stored.pk} rejected: the body (is not UTF-8|holds characters)")
    run_pending()
    assert mercadopago.calls == []  # never acted on


@transactional
def test_a_signed_notification_that_is_not_json_is_applied_from_mercado_pago_once(kiosk, order, mercadopago):
    """The body is only a hint: a genuine notification whose body is not JSON still makes us read the order
    (its data.id is signed); an unsigned one is refused."""
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)
    data_id = payment["provider_order_id"]
    body = "action=order.processed&type=order"
    unsigned = Client().post(notify_url(data_id), body, content_type="text/plain")
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "invalid_signature")
    response = Client().post(notify_url(data_id), body, content_type="text/plain", **signed(data_id))
    assert response.status_code == 200
    run_pending()
    stored = Payment.objects.get()
    assert stored.status == "approved" and Order.objects.get(pk=order["id"]).status == "received"
    noted = PaymentEvent.objects.get(payment=stored, type="notification_received")
    assert noted.payload == {"raw": body}
    assert list(WebhookDelivery.objects.order_by("id").values_list("status", flat=True)) == ["rejected", "processed"]


def test_database_errors_other_than_lost_connections_are_still_bugs():
    """Only a lost or refused connection is a 503: an IntegrityError or a programming error stays a 500."""
    from kiosk.problems import exception_handler

    assert exception_handler(OperationalError(2006, "MySQL server has gone away"), {}).status_code == 503
    assert exception_handler(DatabaseError("syntax"), {}) is None


@pytest.mark.django_db
def test_the_database_going_away_under_a_back_office_page_is_a_503_to_reload(admin_client, caplog):
    """A cashier's page whose database connection is lost gets 'wait and reload' (503, Retry-After), in
    Portuguese, and a log line naming the route, not an error page blaming the code."""
    admin_client.raise_request_exception = False  # as in production: Django's handler answers
    with database_goes_away(lambda sql: "orders_order" in sql, times=100):
        response = admin_client.get("/admin/orders/order/", HTTP_ACCEPT_LANGUAGE="pt-br")
    assert (response.status_code, response["Retry-After"]) == (503, "5")
    assert "recarregue a página" in response.content.decode()
    assert logged(caplog, r"database unavailable at admin:orders_order_changelist: OperationalError", logging.ERROR)
