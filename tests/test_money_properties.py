"""Money properties (hypothesis), on the services and the simulator as Mercado Pago's double: partial refunds in
any order and any size never give back more than was paid, whatever Mercado Pago confirms in between; every
amount that travels to Mercado Pago is a decimal string, never a float; and a decimal string round-trips exactly.
(Order totals with options and combos: tests/test_menu_options.py.)"""

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from payments.models import Payment, Refund
from payments.services.refunds import RefundAmountInvalid, RefundNotAllowed, refund_request
from payments.simulator.client import SimulatorHttpClient
from tests.conftest import new_key, place

pytestmark = pytest.mark.django_db(transaction=True)
PROPERTIES = hypothesis_settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _floats(value, path="") -> list[str]:
    """Where a JSON document holds a float (an amount as 12.5 instead of "12.50")."""
    if isinstance(value, float):
        return [path or "."]
    if isinstance(value, dict):
        return [hit for key, inner in value.items() for hit in _floats(inner, f"{path}.{key}")]
    if isinstance(value, list):
        return [hit for n, inner in enumerate(value) for hit in _floats(inner, f"{path}[{n}]")]
    return []


@pytest.fixture
def sent_to_mercadopago(mercadopago, monkeypatch):
    """The JSON bodies our SDK calls send to Mercado Pago (the simulator), parsed as JSON parses them."""
    bodies: list[tuple[str, object]] = []
    forward = SimulatorHttpClient.request

    def record(self, method, url, *args, **kwargs):
        data = kwargs.get("data")
        if data:
            bodies.append((url, json.loads(data)))
        return forward(self, method, url, *args, **kwargs)

    monkeypatch.setattr(SimulatorHttpClient, "request", record)
    return bodies


@PROPERTIES
@given(data=st.data())
def test_partial_refunds_in_any_order_never_give_back_more_than_was_paid(
    kiosk, menu, mercadopago, sent_to_mercadopago, data
):
    quantity = data.draw(st.integers(1, 4), label="burgers")
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": quantity}]).json()
    checkout = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()
    mercadopago.pay(checkout["payment"]["provider_order_id"])
    mercadopago.deliver()
    payment = Payment.objects.get(pk=checkout["payment"]["id"])
    paid = payment.paid_amount
    assert paid == Decimal(order["total"])

    paid_cents = int(paid * 100)
    asked_total = Decimal("0.00")
    steps = data.draw(
        st.lists(
            st.tuples(st.integers(1, paid_cents + 500), st.sampled_from(["keep", "confirm", "fail"])),
            min_size=1,
            max_size=6,
        ),
        label="refunds",
    )
    for cents, then in steps:
        amount = Decimal(cents).scaleb(-2)
        outstanding = sum(
            (r.amount for r in Refund.objects.filter(payment=payment).exclude(status=Refund.Status.FAILED)),
            Decimal("0.00"),
        )
        before = Refund.objects.count()
        if outstanding + amount > paid:
            with pytest.raises((RefundAmountInvalid, RefundNotAllowed)):
                refund_request(payment_id=payment.pk, amount=amount, reason="property", actor="test")
            assert Refund.objects.count() == before  # refused: nothing reserved, nothing asked
        else:
            refund_request(payment_id=payment.pk, amount=amount, reason="property", actor="test")
            asked_total += amount
        if then == "confirm":
            mercadopago.settle()
        elif then == "fail":
            mercadopago.confirm_refunds(outcome="failed")
            mercadopago.deliver()

        reserved = sum(
            (r.amount for r in Refund.objects.filter(payment=payment).exclude(status=Refund.Status.FAILED)),
            Decimal("0.00"),
        )
        assert reserved <= paid
        assert payment.refunded_amount() <= reserved

    mercadopago.settle()
    succeeded = sum(
        (r.amount for r in Refund.objects.filter(payment=payment, status=Refund.Status.SUCCEEDED)), Decimal("0.00")
    )
    assert payment.refunded_amount() == succeeded <= paid
    assert succeeded <= asked_total
    # Every amount on the way to Mercado Pago was a decimal string: the order's total among them.
    assert any(order["total"] in json.dumps(body) for _, body in sent_to_mercadopago)
    assert [(url, hit) for url, body in sent_to_mercadopago for hit in _floats(body)] == []


@given(st.decimals(min_value=Decimal("0.00"), max_value=Decimal("99999999.99"), places=2, allow_nan=False))
def test_an_amount_as_text_reads_back_exactly(amount):
    from rest_framework import serializers

    from orders.serializers import OrderSerializer  # noqa: F401 - the API's money fields are DRF DecimalFields

    field = serializers.DecimalField(max_digits=10, decimal_places=2)
    text = field.to_representation(amount)
    assert isinstance(text, str) and Decimal(text) == amount
    assert field.to_internal_value(text) == amount
