"""Refunds with Mercado Pago's real timing: taken "in progress", confirmed later (a notification and the
order read back), sometimes refused with refund_in_progress, sometimes failed. Matched by Mercado Pago's
refund id; idempotent across failures; only confirmed refunds count."""

from decimal import Decimal

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders.models import Order
from payments import selectors
from payments.gateway import GatewayUnavailable
from payments.models import Payment, PaymentEvent, Refund
from payments.services.refunds import RefundAmountInvalid, refund_request
from payments.simulator.client import SimulatorHttpClient
from payments.simulator.models import SimNotification, SimRefund
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal


@pytest.fixture(autouse=True)
def _migration_data(migration_data):
    """Roles, permissions and the pickup counter, as the migrations made them."""


def refund(payment, amount=None, reason="customer asked", **kwargs):
    return refund_request(
        payment_id=payment.pk, amount=D(amount) if amount else None, reason=reason, actor="boss", **kwargs
    )


def mercado_pago_refunded(payment) -> Decimal:
    """What the simulated Mercado Pago has really given back for this payment."""
    processed = SimRefund.objects.filter(payment__order_id=payment.provider_order_id, status="processed")
    return sum((r.amount for r in processed), D("0.00"))


def lose_notifications():
    SimNotification.objects.filter(status="queued").update(status="sent")


def answer_lost(monkeypatch, *, times=2, path_end="/refund"):
    """The next refund calls reach Mercado Pago, which does the refund, but their answers never come back
    (`times=2`: the first try and the gateway's own retry of it, so the caller sees Mercado Pago down)."""
    real = SimulatorHttpClient.request
    state = {"left": times}

    def request(self, method, url, *args, **kwargs):
        answer = real(self, method, url, *args, **kwargs)
        if state["left"] and url.endswith(path_end):
            state["left"] -= 1
            raise requests.Timeout("answer lost on the way back")
        return answer

    monkeypatch.setattr(SimulatorHttpClient, "request", request)


# --- Pending until confirmed ----------------------------------------------------------------------


def test_a_refund_is_pending_until_mercado_pago_confirms_it(paid, mercadopago, kitchen):
    done = refund(paid)
    assert (done.status, done.amount) == ("pending", D("61.70"))
    assert done.provider_refund_id.startswith("REF")
    paid.refresh_from_db()
    assert paid.status == "approved" and paid.refunded_amount() == D("0.00")  # nothing given back yet
    assert selectors.refundable_amount(paid) == D("0.00")  # ...but nobody can refund it again
    with pytest.raises(RefundAmountInvalid):
        refund(paid, "1.00")
    assert Order.objects.get(pk=paid.order_id).status == "received"  # still in the kitchen

    mercadopago.settle()
    paid.refresh_from_db()
    done.refresh_from_db()
    assert (done.status, paid.status, paid.refunded_amount()) == ("succeeded", "refunded", D("61.70"))
    assert done.confirmed_at is not None
    order = Order.objects.get(pk=paid.order_id)
    assert (order.status, order.cancel_reason) == ("cancelled", "refunded")  # refunded before handed over
    assert kitchen.get("/api/v1/kitchen/orders/").json() == []
    types = list(PaymentEvent.objects.filter(payment=paid).values_list("type", flat=True))
    assert [types.count(t) for t in ("refund_requested", "refund_accepted", "refund_succeeded")] == [1, 1, 1]


def test_partial_refunds_become_partially_refunded_only_when_confirmed(paid, mercadopago):
    refund(paid, "10.00")
    assert Payment.objects.get(pk=paid.pk).status == "approved"
    mercadopago.settle()
    assert Payment.objects.get(pk=paid.pk).status == "partially_refunded"
    refund(paid, "20.00")
    mercadopago.settle()
    refund(paid)  # the rest
    mercadopago.settle()
    paid.refresh_from_db()
    assert (paid.status, paid.refunded_amount(), mercado_pago_refunded(paid)) == ("refunded", D("61.70"), D("61.70"))
    amounts = list(paid.refunds.order_by("id").values_list("amount", flat=True))
    assert amounts == [D("10.00"), D("20.00"), D("31.70")]


def test_a_refund_mercado_pago_fails_gives_the_amount_back(paid, mercadopago):
    failed = refund(paid, "10.00")
    mercadopago.confirm_refunds(outcome="failed")
    mercadopago.deliver()
    failed.refresh_from_db()
    paid.refresh_from_db()
    assert failed.status == "failed" and "failed" in failed.error
    assert (paid.status, paid.refunded_amount()) == ("approved", D("0.00"))
    assert selectors.refundable_amount(paid) == D("61.70")
    assert PaymentEvent.objects.filter(payment=paid, type="refund_failed").exists()
    again = refund(paid, "61.70")
    assert again.status == "pending"


def test_a_failed_refund_reported_processed_later_is_not_booked_on_top_of_its_replacement(paid, mercadopago):
    """Mercado Pago reports a refund failed, the manager refunds again, then a report says the first one was
    processed after all: the books never give back more than was paid; the payment waits for a person."""
    failed = refund(paid)
    mercadopago.confirm_refunds(outcome="failed")
    mercadopago.deliver()
    replacement = refund(paid)
    SimRefund.objects.filter(id=Refund.objects.get(pk=failed.pk).provider_refund_id).update(status="processed")
    mercadopago.settle()
    paid.refresh_from_db()
    failed.refresh_from_db()
    replacement.refresh_from_db()
    assert (failed.status, replacement.status) == ("failed", "succeeded")
    assert (paid.status, paid.refunded_amount()) == ("refunded", D("61.70"))
    assert paid.needs_review and "depois de informá-lo como falho" in paid.review_reason
    flagged = PaymentEvent.objects.filter(payment=paid, type="review_flagged")
    assert flagged.filter(provider_reference=f"refund-{failed.pk}-processed-after-failed").count() == 1


def test_a_refund_reported_processed_and_its_replacement_failed_in_one_read_are_both_booked(paid, mercadopago):
    """A (30.00) failed, B (40.00) replaced it; one read of the order then reports A processed and B failed:
    whatever order Mercado Pago lists them in, the books say what Mercado Pago gave back (30.00)."""
    first = refund(paid, "30.00")
    mercadopago.confirm_refunds(outcome="failed")
    mercadopago.deliver()
    replacement = refund(paid, "40.00")
    first.refresh_from_db()
    replacement.refresh_from_db()
    SimRefund.objects.filter(id=first.provider_refund_id).update(status="processed")
    SimRefund.objects.filter(id=replacement.provider_refund_id).update(status="failed")
    call_command("reconcile_payments")
    first.refresh_from_db()
    replacement.refresh_from_db()
    paid.refresh_from_db()
    assert (first.status, replacement.status) == ("succeeded", "failed")
    assert paid.refunded_amount() == mercado_pago_refunded(paid) == D("30.00")
    assert selectors.refundable_amount(paid) == D("31.70") and not paid.needs_review


def test_reconcile_keeps_reading_payments_with_refunds_pending(paid, mercadopago):
    pending = refund(paid, "10.00")
    mercadopago.confirm_refunds()
    lose_notifications()  # Mercado Pago's order.refunded never arrives
    call_command("reconcile_payments")
    pending.refresh_from_db()
    assert pending.status == "succeeded"
    assert Payment.objects.get(pk=paid.pk).status == "partially_refunded"


# --- Retry later, idempotency across failures -----------------------------------------------------


def test_refund_in_progress_is_retried_later_with_the_same_key(paid, mercadopago):
    first = refund(paid, "10.00")  # taken: in progress at Mercado Pago
    second = refund(paid, "5.00")  # Mercado Pago: refund_in_progress
    assert (first.status, second.status) == ("pending", "requested")
    assert "refund_in_progress" in second.error or "already being processed" in second.error
    assert selectors.refundable_amount(Payment.objects.get(pk=paid.pk)) == D("46.70")  # both held

    mercadopago.settle()
    Refund.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
    call_command("reconcile_payments")
    second.refresh_from_db()
    assert second.status == "pending" and second.provider_refund_id
    mercadopago.settle()
    paid.refresh_from_db()
    assert paid.refunded_amount() == mercado_pago_refunded(paid) == D("15.00")
    assert SimRefund.objects.count() == 2


def test_a_lost_answer_then_a_retry_with_the_same_key_makes_one_refund(paid, mercadopago, manager, monkeypatch):
    """Stripe's promise: Mercado Pago did the refund but its answer was lost (the API answered 503); the
    kiosk back office retries with the same Idempotency-Key and gets that same refund, not a second one."""
    url = f"/api/v1/payments/{paid.pk}/refunds/"
    answer_lost(monkeypatch)
    first = manager.post(url, {"amount": "10.00", "reason": "cold fries"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert first.status_code == 503, first.json()
    held = Refund.objects.get()
    assert (held.status, first.json()["refund_id"]) == ("requested", held.pk)
    assert SimRefund.objects.count() == 1  # Mercado Pago did make it

    retry = manager.post(url, {"amount": "10.00", "reason": "cold fries"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert retry.status_code == 202, retry.json()
    assert retry.json()["refund"]["id"] == held.pk
    assert retry.json()["refund"]["status"] == "pending"
    assert Refund.objects.count() == 1 and SimRefund.objects.count() == 1
    held.refresh_from_db()
    assert held.provider_refund_id == SimRefund.objects.get().id

    mercadopago.settle()
    paid.refresh_from_db()
    assert paid.refunded_amount() == mercado_pago_refunded(paid) == D("10.00")


def test_reconcile_finishes_a_refund_whose_answer_was_lost_without_booking_it_twice(paid, mercadopago, monkeypatch):
    answer_lost(monkeypatch)
    with pytest.raises(GatewayUnavailable):
        refund(paid, "10.00")
    mercadopago.settle()  # Mercado Pago confirms it and says so: we do not know that refund id yet
    assert Refund.objects.get().status == "requested"
    assert Refund.objects.count() == 1  # the unknown refund was not booked as a second one

    Refund.objects.update(next_attempt_at=timezone.now())
    call_command("reconcile_payments")  # asks again with the same key: Mercado Pago names its refund
    call_command("reconcile_payments")  # reads the order: confirmed
    held = Refund.objects.get()
    assert (held.status, held.provider_refund_id) == ("succeeded", SimRefund.objects.get().id)
    assert Payment.objects.get(pk=paid.pk).refunded_amount() == mercado_pago_refunded(paid) == D("10.00")


def test_running_refund_payment_again_after_a_timeout_continues_the_first_refund(
    paid, mercadopago, manager_user, monkeypatch, capsys
):
    """A manager's command-line refund: Mercado Pago made it but its answer was lost; the manager, told so, runs
    the same command again. One refund of 10.00 at Mercado Pago and in our books, not two."""
    command = ["refund_payment", paid.pk, "--amount", "10.00", "--reason", "cold fries", "--user", "boss"]
    answer_lost(monkeypatch)
    with pytest.raises(CommandError, match=r"held .* retried automatically"):
        call_command(*command)
    assert SimRefund.objects.count() == 1  # Mercado Pago did make it

    make_user("boss2", "manager")
    command[-1] = "boss2"  # the next shift's manager runs it again, typing "10" this time
    call_command(*command[:3], "10", *command[4:])
    assert "no second refund was made" in capsys.readouterr().out
    mercadopago.settle()
    assert Refund.objects.count() == 1 and SimRefund.objects.count() == 1
    paid.refresh_from_db()
    assert paid.refunded_amount() == mercado_pago_refunded(paid) == D("10.00")

    call_command(*command, "--idempotency-key", "second bag")  # a deliberate second refund names itself
    mercadopago.settle()
    paid.refresh_from_db()
    assert paid.refunded_amount() == mercado_pago_refunded(paid) == D("20.00")
    assert Refund.objects.count() == SimRefund.objects.count() == 2


def test_an_answer_naming_no_refund_of_ours_is_asked_again_less_often_and_a_person_looks_after_ten_tries(
    paid, mercadopago, monkeypatch
):
    """Mercado Pago takes the refund but its answer names no refund we could call ours: we ask again with the same
    key, never guess, back off, and after ten tries the payment waits in the review queue; nothing is booked."""
    from payments.services import refunds

    monkeypatch.setattr(refunds, "refunds_in_answer", lambda answer: [])
    held = refund(paid, "10.00")
    delays = []
    for _ in range(refunds.FLAG_AFTER_ATTEMPTS - 1):
        held.refresh_from_db()
        assert held.status == "requested" and not Payment.objects.get(pk=paid.pk).needs_review
        delays.append(held.next_attempt_at - timezone.now())
        Refund.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now())
        call_command("reconcile_payments")
    held.refresh_from_db()
    paid.refresh_from_db()
    assert (held.status, held.attempts) == ("requested", refunds.FLAG_AFTER_ATTEMPTS)
    assert paid.needs_review and str(held.pk) in paid.review_reason
    assert delays[-1] > delays[0] * 8  # backing off, not every minute for ever
    assert SimRefund.objects.count() == 1 and paid.refunded_amount() == D("0.00")
    assert selectors.refundable_amount(paid) == D("51.70")  # still reserved: asked, never guessed

    # Flagged once, however many more tries; and also when overlapping tries skipped the tenth count.
    Payment.objects.filter(pk=paid.pk).update(needs_review=False)
    Refund.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now())
    call_command("reconcile_payments")
    assert not Payment.objects.get(pk=paid.pk).needs_review
    skipped = refund(paid, "5.00", reason="another")
    Refund.objects.filter(pk=skipped.pk).update(
        attempts=refunds.FLAG_AFTER_ATTEMPTS + 3, next_attempt_at=timezone.now()
    )
    call_command("reconcile_payments")
    assert str(skipped.pk) in Payment.objects.get(pk=paid.pk).review_reason


def test_the_same_key_for_another_refund_is_refused(paid, mercadopago, manager):
    url = f"/api/v1/payments/{paid.pk}/refunds/"
    mercadopago.faults = ["timeout", "timeout"]
    assert (
        manager.post(url, {"amount": "10.00", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code
        == 503
    )
    other = manager.post(url, {"amount": "20.00", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    for body in ({"reason": "x"}, {"amount": "10.00", "reason": "another reason"}):  # "everything"; reworded
        other = manager.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
        assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused"), body
    assert Refund.objects.count() == 1


# --- Matching by Mercado Pago's id ----------------------------------------------------------------


def test_a_panel_refund_of_the_same_amount_is_never_taken_for_ours(paid, mercadopago):
    """Our refund of 10.00 could not reach Mercado Pago; meanwhile someone refunds 10.00 in Mercado Pago's
    panel. That refund is not ours: ours is still made, and both are booked, each by its own id."""
    from payments.simulator.api import dispatch

    mercadopago.faults = ["timeout", "timeout"]
    with pytest.raises(GatewayUnavailable):
        refund(paid, "10.00")
    status, _ = dispatch(
        "POST",
        f"/v1/orders/{paid.provider_order_id}/refund",
        headers={"Authorization": "Bearer APP_USR-SIMULATOR", "x-idempotency-key": "panel-1"},
        body='{"transactions": [{"id": "%s", "amount": "10.00"}]}' % paid.provider_payment_id,  # noqa: UP031
    )
    assert status == 201
    mercadopago.settle()
    ours = Refund.objects.get(requested_by="boss")
    assert (ours.status, ours.provider_refund_id) == ("requested", None)

    Refund.objects.update(next_attempt_at=timezone.now())
    call_command("reconcile_payments")
    mercadopago.settle()
    call_command("reconcile_payments")
    ours.refresh_from_db()
    panel = Refund.objects.get(requested_by="mercadopago")
    assert ours.status == panel.status == "succeeded"
    assert ours.provider_refund_id != panel.provider_refund_id
    assert {ours.provider_refund_id, panel.provider_refund_id} == set(SimRefund.objects.values_list("id", flat=True))
    assert Payment.objects.get(pk=paid.pk).refunded_amount() == mercado_pago_refunded(paid) == D("20.00")


def test_a_full_refund_records_what_mercado_pago_actually_refunded(paid, mercadopago):
    """A 5.00 refund made in Mercado Pago's panel, whose notification never came; then "refund all": Mercado
    Pago gives back what was left, 56.70, and that is what our books say."""
    from payments.simulator.api import dispatch

    dispatch(
        "POST",
        f"/v1/orders/{paid.provider_order_id}/refund",
        headers={"Authorization": "Bearer APP_USR-SIMULATOR", "x-idempotency-key": "panel-2"},
        body='{"transactions": [{"id": "%s", "amount": "5.00"}]}' % paid.provider_payment_id,  # noqa: UP031
    )
    mercadopago.confirm_refunds()
    lose_notifications()
    everything = refund(paid)
    assert everything.full
    mercadopago.settle()
    call_command("reconcile_payments")
    everything.refresh_from_db()
    assert (everything.status, everything.amount) == ("succeeded", D("56.70"))
    paid.refresh_from_db()
    assert paid.status == "refunded"
    assert paid.refunded_amount() == mercado_pago_refunded(paid) == D("61.70")
    assert Refund.objects.get(requested_by="mercadopago").amount == D("5.00")


# --- The API --------------------------------------------------------------------------------------


def test_refund_api_answers_202_while_mercado_pago_confirms_and_lists_refunds(paid, mercadopago, manager):
    url = f"/api/v1/payments/{paid.pk}/refunds/"
    response = manager.post(url, {"amount": "10.00", "reason": "cold fries"}, format="json", HTTP_IDEMPOTENCY_KEY="a1")
    assert response.status_code == 202, response.json()
    assert response.json()["refund"]["status"] == "pending"
    assert response.json()["payment"]["status"] == "approved"
    mercadopago.settle()
    listed = manager.get(url).json()
    assert [(r["amount"], r["status"]) for r in listed] == [("10.00", "succeeded")]
    assert listed[0]["confirmed_at"]
