"""Live mode: the official SDK, through our BaseUrlHttpClient, over real HTTP to a Mercado Pago stand-in.

The stand-in (tests/mercadopago_double.py) is deliberately tiny and written from Mercado Pago's documentation
(not from our simulator): it records what we send and answers with documented shapes, so these tests check our
requests (URL, headers, body types) and our reading of the answers on the real network path.
"""

import json
from decimal import Decimal

import pytest

from orders.services import ItemRequest, order_place
from payments.gateway import GatewayRejected, GatewayUnavailable, MercadoPago, breaker, build_sdk

pytestmark = pytest.mark.django_db


CREATED = {
    "id": "ORD01K372G4J4FXZ9HGHZMJMGGPKE",
    "type": "qr",
    "processing_mode": "automatic",
    "external_reference": "kp-x",
    "total_amount": "61.70",
    "status": "created",
    "status_detail": "created",
    "transactions": {
        "payments": [
            {
                "id": "PAY01K372G4J4FXZ9HGHZMKWSQS20",
                "amount": "61.70",
                "status": "created",
                "status_detail": "ready_to_process",
            }
        ]
    },
    "config": {"qr": {"external_pos_id": "POSA", "mode": "dynamic"}},
    "type_response": {"qr_data": "00020101021226580014br.gov.bcb.qr0136"},
}


def test_create_qr_order_sends_the_documented_request(double, terminal, menu):
    order = order_place(
        terminal=terminal,
        items=[ItemRequest(menu["burger"].pk, 2, "sem cebola"), ItemRequest(menu["juice"].pk, 1)],
    )
    double.script.append((201, CREATED))
    answer = MercadoPago().create_qr_order(
        reference="kp-abc", order=order, terminal=terminal, expiration=__import__("datetime").timedelta(minutes=15)
    )
    assert answer["id"] == CREATED["id"]

    sent = double.requests[0]
    assert (sent["method"], sent["path"]) == ("POST", "/v1/orders")
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["authorization"] == "Bearer APP_USR-1234-112233-abc-99"
    assert headers["x-idempotency-key"] == "kp-abc"
    body = json.loads(sent["raw"])
    assert body["type"] == "qr"
    assert body["config"] == {"qr": {"external_pos_id": "POSA", "mode": "dynamic"}}
    assert body["external_reference"] == "kp-abc"
    assert body["total_amount"] == "61.70"
    assert body["transactions"] == {"payments": [{"amount": "61.70"}]}
    assert body["expiration_time"] == "PT15M"
    assert body["items"][0] == {
        "title": "X-Burger",
        "unit_price": "25.90",
        "quantity": 2,
        "unit_measure": "unit",
        "external_code": str(menu["burger"].pk),
    }
    # No floats anywhere in what we send: every amount is a string.
    assert "25.9," not in sent["raw"] and Decimal(body["items"][1]["unit_price"]) == Decimal("9.90")


def test_transient_answers_are_retried_then_reported_unavailable(double):
    double.script.extend([(503, {"errors": [{"code": "500"}]}), (502, {})])
    with pytest.raises(GatewayUnavailable):
        MercadoPago().get_order("ORD1")
    assert len(double.requests) == 2  # one try + MERCADOPAGO_MAX_RETRIES


def test_a_refusal_carries_mercado_pagos_code_and_message(double):
    double.script.append(
        (400, {"errors": [{"code": "unsupported_partially_refunds", "message": "Partial refunds are not supported"}]})
    )
    with pytest.raises(GatewayRejected) as exc:
        MercadoPago().refund_order("ORD1", idempotency_key="k", transaction_id="PAY1", amount=Decimal("10.00"))
    assert exc.value.code == "unsupported_partially_refunds"
    assert "Partial refunds are not supported" in exc.value.message
    sent = double.requests[0]
    assert sent["path"] == "/v1/orders/ORD1/refund"
    assert json.loads(sent["raw"]) == {"transactions": [{"id": "PAY1", "amount": "10.00"}]}


def test_a_full_refund_sends_no_body(double):
    double.script.append((201, {"id": "ORD1", "status": "refunded"}))
    MercadoPago().refund_order("ORD1", idempotency_key="k")
    assert double.requests[0]["raw"] == ""


def test_unreachable_mercado_pago_is_unavailable(settings):
    settings.MERCADOPAGO_ACCESS_TOKEN = "APP_USR-x"
    settings.MERCADOPAGO_SIMULATOR = False
    settings.MERCADOPAGO_API_BASE_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.MERCADOPAGO_MAX_RETRIES = 0
    breaker.reset()
    with pytest.raises(GatewayUnavailable):
        MercadoPago(build_sdk()).get_order("ORD1")
    breaker.reset()


def test_a_refund_over_http_is_pending_until_the_order_read_back_says_processed(double, terminal, menu):
    """Mercado Pago's documented refund timing, over the real network path: the refund call answers with
    the refund "processing" (or refund_in_progress: same key again later); only the order read back with
    the refund processed makes it count."""
    from django.utils import timezone

    from payments.models import Payment, Refund
    from payments.services.reconcile import payments_reconcile
    from payments.services.refunds import refund_request

    order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 2), ItemRequest(menu["juice"].pk, 1)])
    payment = Payment.objects.create(
        order=order,
        amount=order.total,
        paid_amount=order.total,
        status="approved",
        settles=order,
        paid_at=timezone.now(),
        provider_order_id=CREATED["id"],
        provider_payment_id=CREATED["transactions"]["payments"][0]["id"],
    )
    transaction_id = payment.provider_payment_id
    refund_line = {"id": "REF01K372H0000000000000000AB", "transaction_id": transaction_id, "amount": "10.00"}
    double.script.append((409, {"errors": [{"code": "refund_in_progress", "message": "A refund is in progress."}]}))
    held = refund_request(payment_id=payment.pk, amount=Decimal("10.00"), reason="cold fries", actor="boss")
    assert (held.status, held.provider_refund_id) == ("requested", None)

    double.script.append(
        (
            201,
            {
                "id": CREATED["id"],
                "status": "processed",
                "transactions": {"refunds": [{**refund_line, "status": "processing"}]},
            },
        )
    )
    Refund.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now())
    payments_reconcile()
    held.refresh_from_db()
    assert (held.status, held.provider_refund_id) == ("pending", refund_line["id"])
    first, second = double.requests[0], double.requests[1]
    assert first["path"] == second["path"] == f"/v1/orders/{CREATED['id']}/refund"
    assert json.loads(second["raw"]) == {"transactions": [{"id": transaction_id, "amount": "10.00"}]}
    keys = [{k.lower(): v for k, v in r["headers"].items()}["x-idempotency-key"] for r in (first, second)]
    assert keys == [held.idempotency_key] * 2  # the same refund, the same key, every time
    assert Payment.objects.get(pk=payment.pk).status == "approved"

    processed = {
        **CREATED,
        "status": "processed",
        "status_detail": "partially_refunded",
        "total_paid_amount": "61.70",
        "transactions": {
            "payments": [{**CREATED["transactions"]["payments"][0], "status": "processed", "paid_amount": "61.70"}],
            "refunds": [{**refund_line, "status": "processed"}],
        },
    }
    double.script.append((200, processed))
    payments_reconcile()
    held.refresh_from_db()
    assert held.status == "succeeded" and held.confirmed_at
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.refunded_amount()) == ("partially_refunded", Decimal("10.00"))
    assert double.requests[-1]["method"] == "GET"
