"""The back office: refunds (service, API, command, admin form), the review queue, permissions, audit."""

import datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from kiosk.models import AuditRecord
from orders.models import Order
from payments import selectors
from payments.gateway import GatewayError, GatewayRejected
from payments.models import Payment, PaymentEvent, Refund
from payments.services.refunds import RefundAmountInvalid, RefundNotAllowed, refund_request
from tests.conftest import make_user, new_key, place, staff_of, store_named

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _migration_data(migration_data):
    """Roles, permissions and the pickup counter, as the migrations made them."""


@pytest.fixture
def manager_admin(manager_user):
    client = Client()
    client.force_login(manager_user)
    return client


@pytest.fixture
def cashier(db):
    """A cashier of "Loja 1" (the store of the orders here) with access to the admin: may see payments, may
    not refund."""
    client = Client()
    client.force_login(staff_of(make_user("cashier", "cashier", is_staff=True), store_named("Loja 1")))
    return client


def form_key(client, url) -> str:
    """The one-time key of the refund form as the admin page gives it."""
    import re

    return re.search(r'name="form_key" value="([0-9a-f]{32})"', client.get(url).content.decode())[1]


def refund(payment, amount=None, reason="customer asked"):
    return refund_request(
        payment_id=payment.pk, amount=Decimal(amount) if amount else None, reason=reason, actor="boss"
    )


# --- The refund service ---------------------------------------------------------------------------


def test_refund_after_delivery_keeps_the_order_completed(paid, mercadopago):
    from orders.services import order_advance

    for status in ("in_preparation", "ready", "completed"):
        order_advance(order_id=paid.order_id, status=status)
    refund(paid)
    mercadopago.settle()
    assert Payment.objects.get(pk=paid.pk).status == "refunded"
    assert Order.objects.get(pk=paid.order_id).status == "completed"


@pytest.mark.parametrize("amount", ["61.71", "0.00", "-1.00"])
def test_over_and_non_positive_refunds_are_refused(paid, amount):
    with pytest.raises(RefundAmountInvalid):
        refund(paid, amount)
    assert not Refund.objects.exists()
    assert Payment.objects.get(pk=paid.pk).status == "approved"


def test_refund_needs_a_reason_and_money_to_give_back(paid, kiosk, menu):
    with pytest.raises(RefundAmountInvalid):
        refund(paid, reason="  ")
    unpaid = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    pending = Payment.objects.create(order_id=unpaid["id"], amount=Decimal("25.90"))
    with pytest.raises(RefundNotAllowed):
        refund(pending)


def test_mercado_pago_refusing_is_recorded_and_shown(paid, mercadopago):
    mercadopago.faults = [400]
    with pytest.raises(GatewayRejected) as exc:
        refund(paid, "10.00")
    assert "simulated" in exc.value.message
    failed = Refund.objects.get()
    assert failed.status == "failed" and "simulated" in failed.error
    assert selectors.refundable_amount(Payment.objects.get(pk=paid.pk)) == Decimal("61.70")  # nothing held
    assert PaymentEvent.objects.filter(payment=paid, type="refund_failed").exists()


def test_mercado_pago_unreachable_holds_the_amount_and_reconcile_finishes_it(paid, mercadopago):
    mercadopago.faults = ["timeout", "timeout"]
    with pytest.raises(GatewayError):
        refund(paid, "10.00")
    held = Refund.objects.get()
    assert held.status == "requested" and held.next_attempt_at > timezone.now()
    assert selectors.refundable_amount(Payment.objects.get(pk=paid.pk)) == Decimal("51.70")
    call_command("reconcile_payments")
    assert Refund.objects.get().attempts == 1  # not yet: its retry is not due
    Refund.objects.update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))
    call_command("reconcile_payments")
    held.refresh_from_db()
    assert held.status == "pending"
    mercadopago.settle()
    assert Refund.objects.get().status == "succeeded"
    assert Payment.objects.get(pk=paid.pk).status == "partially_refunded"


def test_a_refund_made_in_mercado_pagos_panel_is_reflected(paid, mercadopago):
    from payments.simulator.api import dispatch

    status, body = dispatch(
        "POST",
        f"/v1/orders/{paid.provider_order_id}/refund",
        headers={"Authorization": "Bearer APP_USR-SIMULATOR", "x-idempotency-key": "panel-1"},
        body='{"transactions": [{"id": "%s", "amount": "5.00"}]}' % paid.provider_payment_id,  # noqa: UP031
    )
    assert status == 201, body
    assert not Refund.objects.exists()  # nothing is known here until Mercado Pago tells
    mercadopago.settle()
    paid.refresh_from_db()
    outside = Refund.objects.get()
    assert (outside.amount, outside.requested_by, outside.status) == (Decimal("5.00"), "mercadopago", "succeeded")
    assert paid.status == "partially_refunded"
    assert paid.refunded_amount() == Decimal("5.00")


# --- REST endpoint and command --------------------------------------------------------------------


def test_refund_api_for_managers_with_idempotency(paid, manager):
    url = f"/api/v1/payments/{paid.pk}/refunds/"
    response = manager.post(url, {"amount": "10.00", "reason": "cold fries"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert response.status_code == 202, response.json()
    assert (response.json()["refund"]["amount"], response.json()["refund"]["status"]) == ("10.00", "pending")
    assert response.json()["payment"]["status"] == "approved"
    again = manager.post(url, {"amount": "10.00", "reason": "cold fries"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert again["Idempotent-Replayed"] == "true"
    assert Refund.objects.count() == 1

    too_much = manager.post(url, {"amount": "60.00", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="r2")
    assert (too_much.status_code, too_much.json()["code"]) == (400, "refund_amount_invalid")
    for bad in (
        {"reason": ""},
        {"amount": 10.0, "reason": "x"},
        {"amount": "1.234", "reason": "x"},
        {"reason": "x", "why": 1},
    ):
        response = manager.post(url, bad, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
        assert (response.status_code, response.json()["code"]) == (400, "validation_error"), bad
    assert (
        manager.post(
            "/api/v1/payments/999999/refunds/", {"reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="r3"
        ).status_code
        == 404
    )


def test_refund_api_refuses_kitchen_and_kiosk(paid, kitchen, kiosk):
    for client in (kitchen, kiosk):
        response = client.post(
            f"/api/v1/payments/{paid.pk}/refunds/", {"reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=new_key()
        )
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert not Refund.objects.exists()


def test_refund_command(paid, manager_user):
    call_command("refund_payment", paid.pk, "--amount", "1.50", "--reason", "by phone", "--user", manager_user.username)
    assert Refund.objects.get().amount == Decimal("1.50")
    with pytest.raises(CommandError):
        call_command("refund_payment", paid.pk, "--reason", "x", "--user", "nobody")
    with pytest.raises(CommandError):
        call_command("refund_payment", paid.pk, "--amount", "999", "--reason", "x", "--user", manager_user.username)


# --- The admin console ----------------------------------------------------------------------------


def test_admin_refund_form_end_to_end(paid, manager_admin, manager_user, mercadopago):
    url = f"/admin/payments/payment/{paid.pk}/refund/"
    page = manager_admin.get(url)
    assert page.status_code == 200
    # The refundable remainder, in English here (tests/test_i18n.py: "61,70" in Portuguese).
    assert 'value="61.70"' in page.content.decode()
    number = Order.objects.get(pk=paid.order_id).number
    key = form_key(manager_admin, url)

    wrong = manager_admin.post(
        url, {"amount": "10.00", "reason": "cold", "confirm_order_number": number + 1, "form_key": key}
    )
    assert wrong.status_code == 200 and "not this payment" in wrong.content.decode()
    too_much = manager_admin.post(
        url, {"amount": "70.00", "reason": "cold", "confirm_order_number": number, "form_key": key}
    )
    assert "At most 61.70" in too_much.content.decode()  # written as the form takes it
    no_reason = manager_admin.post(
        url, {"amount": "10.00", "reason": "", "confirm_order_number": number, "form_key": key}
    )
    assert no_reason.status_code == 200
    assert not Refund.objects.exists()

    done = manager_admin.post(
        url, {"amount": "10.00", "reason": "cold", "confirm_order_number": number, "form_key": key}
    )
    assert done.status_code == 302  # (tests/test_i18n.py: "10,00", the Portuguese way of writing it)
    again = manager_admin.post(
        url, {"amount": "10.00", "reason": "cold", "confirm_order_number": number, "form_key": key}
    )
    assert again.status_code == 302  # the same form sent twice (a double click): still one refund
    assert Refund.objects.get().amount == Decimal("10.00")
    record = AuditRecord.objects.get(action="Refund")
    assert record.after["refund"] == "10.00"
    assert (record.actor, record.reason, record.object_id) == (manager_user, "cold", str(paid.pk))
    assert (record.before["status"], record.after["status"]) == ("approved", "approved")  # not confirmed yet
    page = manager_admin.get(f"/admin/payments/payment/{paid.pk}/change/").content.decode()
    assert "Mercado Pago took the refund of 10.00" in page
    mercadopago.settle()
    change_page = manager_admin.get(f"/admin/payments/payment/{paid.pk}/change/").content.decode()
    assert "Refund succeeded" in change_page and "partially_refunded" in change_page
    assert f"/admin/payments/payment/{paid.pk}/refund/" in change_page


def test_admin_shows_mercado_pagos_refusal(paid, manager_admin, mercadopago):
    mercadopago.faults = [400]
    number = Order.objects.get(pk=paid.order_id).number
    response = manager_admin.post(
        f"/admin/payments/payment/{paid.pk}/refund/",
        {"amount": "10.00", "reason": "x", "confirm_order_number": number, "form_key": "a" * 32},
    )
    assert response.status_code == 200
    assert "Mercado Pago refused the refund" in response.content.decode()


def test_cashier_sees_payments_but_cannot_refund(paid, cashier):
    assert cashier.get(f"/admin/payments/payment/{paid.pk}/change/").status_code == 200
    assert cashier.get(f"/admin/payments/payment/{paid.pk}/refund/").status_code == 403
    number = Order.objects.get(pk=paid.order_id).number
    response = cashier.post(
        f"/admin/payments/payment/{paid.pk}/refund/", {"amount": "1.00", "reason": "x", "confirm_order_number": number}
    )
    assert response.status_code == 403
    page = cashier.get(f"/admin/payments/payment/{paid.pk}/change/").content.decode()
    assert f"/admin/payments/payment/{paid.pk}/refund/" not in page
    changelist = cashier.post("/admin/payments/payment/", {"action": "refund", "_selected_action": [paid.pk]})
    assert changelist.status_code in {200, 302}  # not an action of theirs: the list again, nothing done
    assert not Refund.objects.exists()


def test_review_queue_badge_and_actions(kiosk, menu, mercadopago, manager_admin, manager_user):
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], paid_amount="25.00")  # short by 0.90
    mercadopago.deliver()
    flagged = Payment.objects.get()
    assert flagged.needs_review

    home = manager_admin.get("/admin/").content.decode()
    assert 'id="review-queue-count">1<' in home
    queue = manager_admin.get("/admin/payments/payment/?needs_review__exact=1").content.decode()
    assert f"/admin/payments/payment/{flagged.pk}/change/" in queue

    # Approving is refused: Mercado Pago confirms only 25.00 for an order of 25.90.
    manager_admin.post(
        "/admin/payments/payment/", {"action": "approve_and_send_to_kitchen", "_selected_action": [flagged.pk]}
    )
    assert Order.objects.get(pk=order["id"]).status == "awaiting_payment"

    # Mark reviewed needs a comment.
    redirect = manager_admin.post(
        "/admin/payments/payment/", {"action": "mark_reviewed", "_selected_action": [flagged.pk]}
    )
    review_url = redirect["Location"]
    assert manager_admin.post(review_url, {"ids": str(flagged.pk), "comment": ""}).status_code == 200
    assert Payment.objects.get().needs_review
    manager_admin.post(review_url, {"ids": str(flagged.pk), "comment": "customer paid the rest in cash"})
    assert not Payment.objects.get().needs_review
    assert PaymentEvent.objects.filter(type="review_resolved", message="customer paid the rest in cash").exists()
    assert AuditRecord.objects.filter(action="Mark reviewed", actor=manager_user).exists()
    assert 'id="review-queue-count">0<' in manager_admin.get("/admin/").content.decode()


def test_approve_sends_a_flagged_but_correct_payment_to_the_kitchen(kiosk, menu, mercadopago, manager_admin):
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)  # paid; we were never told
    Payment.objects.update(needs_review=True, review_reason="customer shows a receipt")
    manager_admin.post(
        "/admin/payments/payment/", {"action": "approve_and_send_to_kitchen", "_selected_action": [payment["id"]]}
    )
    assert Order.objects.get(pk=order["id"]).status == "received"
    stored = Payment.objects.get()
    assert (stored.status, stored.needs_review, str(stored.settles_id)) == ("approved", False, order["id"])


def test_sync_applies_what_mercado_pago_says(kiosk, menu, mercadopago, manager_admin, manager_user):
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)
    manager_admin.post(
        "/admin/payments/payment/", {"action": "sync_with_mercadopago", "_selected_action": [payment["id"]]}
    )
    assert Payment.objects.get().status == "approved"
    assert Order.objects.get(pk=order["id"]).status == "received"
    record = AuditRecord.objects.get(action="Sync with Mercado Pago")
    assert (record.actor, record.before["status"], record.after["status"]) == (manager_user, "pending", "approved")


def test_audit_records_cannot_be_edited_or_deleted_in_the_admin(paid, manager_admin, manager_user, cashier):
    from kiosk.audit import audit

    record = audit(user=manager_user, obj=paid, action="test", reason="why")
    assert "why" in manager_admin.get("/admin/kiosk/auditrecord/").content.decode()  # managers read it
    assert cashier.get("/admin/kiosk/auditrecord/").status_code == 403
    superuser = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    assert client.get(f"/admin/kiosk/auditrecord/{record.pk}/change/").status_code == 200
    client.post(f"/admin/kiosk/auditrecord/{record.pk}/change/", {"reason": "rewritten"})
    assert client.post(f"/admin/kiosk/auditrecord/{record.pk}/delete/", {"post": "yes"}).status_code == 403
    record.refresh_from_db()
    assert record.reason == "why"


def test_order_actions_are_audited_with_before_and_after(manager_admin, manager_user, kiosk, menu):
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    manager_admin.post("/admin/orders/order/counter-payment/", {"ids": order["id"], "method": "cash"})
    record = AuditRecord.objects.get(object_id=order["id"])
    assert record.actor == manager_user
    assert (record.before["status"], record.after["status"]) == ("awaiting_payment", "received")


def test_review_page_with_junk_ids_is_404(manager_admin):
    for ids in ("\u00b2", "9" * 40, "9" * 5000, "abc", "-1"):
        assert manager_admin.get("/admin/payments/payment/review/", {"ids": ids}).status_code == 404, ids


def test_a_null_refund_amount_is_refused_not_taken_as_everything(paid, manager):
    response = manager.post(
        f"/api/v1/payments/{paid.pk}/refunds/", {"amount": None, "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="n"
    )
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert not Refund.objects.exists()


def test_reconcile_finds_a_panel_refund_whose_notification_never_came(paid, mercadopago):
    from payments.simulator.api import dispatch
    from payments.simulator.models import SimNotification

    status, _ = dispatch(
        "POST",
        f"/v1/orders/{paid.provider_order_id}/refund",
        headers={"Authorization": "Bearer APP_USR-SIMULATOR", "x-idempotency-key": "panel-lost"},
        body=None,
    )
    assert status == 201
    mercadopago.confirm_refunds()
    SimNotification.objects.update(status="sent")  # its notification is lost on the way
    assert not Refund.objects.exists()

    call_command("reconcile_payments")
    assert not Refund.objects.exists()  # checked a moment ago: left alone for MERCADOPAGO_RECONCILE_SETTLED_HOURS
    Payment.objects.filter(pk=paid.pk).update(updated_at=paid.updated_at - datetime.timedelta(hours=7))
    call_command("reconcile_payments")
    paid.refresh_from_db()
    assert paid.status == "refunded"
    assert Refund.objects.get().requested_by == "mercadopago"
    assert Order.objects.get(pk=paid.order_id).status == "cancelled"  # refunded in full before delivery


def test_actions_that_change_a_payment_need_a_change_permission_not_only_view(
    kiosk, menu, mercadopago, manager_admin, cashier
):
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"], notify=False)
    page = cashier.get("/admin/payments/payment/")
    assert page.status_code == 200 and "sync_with_mercadopago" not in page.content.decode()  # not offered
    cashier.post("/admin/payments/payment/", {"action": "sync_with_mercadopago", "_selected_action": [payment["id"]]})
    assert Payment.objects.get().status == "pending"  # and refused when posted anyway
    assert not AuditRecord.objects.exists()
    assert "sync_with_mercadopago" in manager_admin.get("/admin/payments/payment/").content.decode()
    from payments.models import WebhookDelivery

    WebhookDelivery.objects.create(signature_valid=True)  # the action box shows only over a non-empty list
    assert "process_again" in manager_admin.get("/admin/payments/webhookdelivery/").content.decode()
    assert "process_again" not in cashier.get("/admin/payments/webhookdelivery/").content.decode()
