"""The gateway's policy on its own, with a fake SDK (no network, no simulator): retries (tenacity), the circuit
breaker (pybreaker, per process), the refusal to call inside a transaction, and the latency histogram."""

from datetime import timedelta

import pybreaker
import pytest
import requests
from django.db import transaction
from prometheus_client import REGISTRY

from payments import gateway as gateway_module
from payments.gateway import (
    CalledInsideTransaction,
    CircuitOpen,
    GatewayRejected,
    GatewayUnavailable,
    MercadoPago,
    breaker,
)

pytestmark = pytest.mark.django_db

OK = {"status": 200, "response": {"id": "ORD1", "status": "created"}}


def answer(status: int, code: str = "internal_error") -> dict:
    return {"status": status, "response": {"errors": [{"code": code, "message": f"answered {status}"}]}}


class FakeSdk:
    """Stands in for `mercadopago.SDK`: every call takes the next scripted answer (a dict as the SDK returns,
    or an exception to raise) and is recorded in `calls`. With nothing scripted, it answers 200."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls: list[tuple] = []
        self.during_call = None  # called inside the next SDK call (to act while a call is in flight)

    def _next(self, *call):
        self.calls.append(call)
        if self.during_call is not None:
            action, self.during_call = self.during_call, None
            action()
        item = self.script.pop(0) if self.script else OK
        if isinstance(item, BaseException):
            raise item
        return item

    def order(self):
        sdk = self

        class Orders:
            def create(self, body, options):
                return sdk._next("create", body["external_reference"])

            def get(self, order_id, options):
                return sdk._next("get", order_id)

            def cancel(self, order_id, options):
                return sdk._next("cancel", order_id)

            def refund_transaction(self, order_id, body, options):
                return sdk._next("refund", order_id)

        return Orders()

    def payment(self):
        sdk = self

        class Payments:
            def get(self, payment_id, options):
                return sdk._next("payment", payment_id)

        return Payments()


@pytest.fixture(autouse=True)
def policy(settings, monkeypatch):
    """3 attempts per call, a breaker opening after 3 failures for 30 s; waits recorded, never slept."""
    settings.MERCADOPAGO_MAX_RETRIES = 2
    settings.MERCADOPAGO_BREAKER_THRESHOLD = 3
    settings.MERCADOPAGO_BREAKER_COOLDOWN = 30
    waits: list[float] = []
    monkeypatch.setattr(gateway_module, "_sleep", waits.append)
    breaker.reset()
    yield waits
    breaker.reset()


def cooldown_passes():
    """The breaker's cooldown is over (pybreaker counts it from when it opened)."""
    storage = breaker._state_storage
    storage.opened_at = storage.opened_at - timedelta(seconds=breaker.reset_timeout + 1)


def histogram_count(operation: str, outcome: str) -> float:
    labels = {"operation": operation, "outcome": outcome}
    return REGISTRY.get_sample_value("kiosk_mercadopago_call_seconds_count", labels) or 0.0


def breaker_gauge() -> float | None:
    return REGISTRY.get_sample_value("kiosk_mercadopago_circuit_breaker_state")


def test_a_transient_503_is_retried_and_the_next_answer_returned(policy):
    sdk = FakeSdk(answer(503), OK)
    assert MercadoPago(sdk).get_order("ORD1") == OK["response"]
    assert len(sdk.calls) == 2
    assert len(policy) == 1 and 0.1 <= policy[0] <= 0.3  # 0.2 s with +-50 % jitter
    assert breaker.current_state == pybreaker.STATE_CLOSED and breaker.fail_counter == 0


def test_timeouts_and_malformed_json_are_transient_too(policy):
    sdk = FakeSdk(requests.Timeout("read timed out"), ValueError("Expecting value"), OK)
    assert MercadoPago(sdk).get_payment("123")["id"] == "ORD1"
    assert len(sdk.calls) == 3
    assert 0.2 <= policy[1] <= 0.6  # the second wait doubles: 0.4 s +-50 %


def test_retries_exhausted_is_unavailable_with_the_last_answer(settings):
    settings.MERCADOPAGO_BREAKER_THRESHOLD = 10
    sdk = FakeSdk(answer(500), answer(502), answer(503, "service_unavailable"))
    with pytest.raises(GatewayUnavailable) as exc:
        MercadoPago(sdk).get_order("ORD1")
    assert len(sdk.calls) == 3  # one try + MERCADOPAGO_MAX_RETRIES
    assert exc.value.message == "get order ORD1: Mercado Pago answered 503 service_unavailable"
    assert exc.value.status == 503 and exc.value.body == answer(503, "service_unavailable")["response"]
    assert not isinstance(exc.value, CircuitOpen)

    sdk = FakeSdk(*[requests.ConnectionError("connection refused")] * 3)
    with pytest.raises(GatewayUnavailable) as exc:
        MercadoPago(sdk).cancel_order("ORD1", idempotency_key="k")
    assert exc.value.message == "cancel order ORD1: ConnectionError: connection refused"
    assert exc.value.status is None


def test_retries_argument_overrides_the_setting():
    sdk = FakeSdk(answer(503), OK)
    with pytest.raises(GatewayUnavailable):
        MercadoPago(sdk).get_order("ORD1", retries=0)
    assert len(sdk.calls) == 1


def test_a_4xx_is_not_retried_and_does_not_trip_the_breaker(settings):
    settings.MERCADOPAGO_BREAKER_THRESHOLD = 2
    sdk = FakeSdk(answer(400, "invalid_pos"), answer(404, "not_found"), answer(422, "unprocessable"))
    for _ in range(3):
        with pytest.raises(GatewayRejected) as exc:
            MercadoPago(sdk).get_order("ORD1")
    assert len(sdk.calls) == 3  # one call each: no retry
    assert (exc.value.status, exc.value.code) == (422, "unprocessable")
    assert exc.value.message == "get order ORD1: Mercado Pago answered 422 unprocessable: answered 422"
    assert breaker.current_state == pybreaker.STATE_CLOSED


def test_a_4xx_resets_the_failure_count(settings):
    settings.MERCADOPAGO_MAX_RETRIES = 0
    settings.MERCADOPAGO_BREAKER_THRESHOLD = 2
    sdk = FakeSdk(answer(503), answer(400), answer(503))
    gateway = MercadoPago(sdk)
    with pytest.raises(GatewayUnavailable):
        gateway.get_order("ORD1")
    with pytest.raises(GatewayRejected):
        gateway.get_order("ORD1")
    with pytest.raises(GatewayUnavailable):
        gateway.get_order("ORD1")
    assert breaker.current_state == pybreaker.STATE_CLOSED and breaker.fail_counter == 1


def test_the_breaker_opens_after_the_threshold_and_then_fails_fast(policy, caplog):
    sdk = FakeSdk(*[answer(503)] * 10)
    gateway = MercadoPago(sdk)
    with pytest.raises(GatewayUnavailable) as tripping:
        gateway.get_order("ORD1", retries=5)
    # Each failed attempt counted: the third opened the breaker and the retries stopped there, without a wait.
    assert len(sdk.calls) == 3 and len(policy) == 2
    assert breaker.current_state == pybreaker.STATE_OPEN
    assert "Mercado Pago answered 503" in tripping.value.message
    assert 29 <= tripping.value.retry_after <= 30
    assert any(r.levelname == "ERROR" and "circuit breaker open" in r.getMessage() for r in caplog.records)
    assert breaker_gauge() == 2

    with pytest.raises(CircuitOpen) as fast:
        gateway.get_order("ORD2")
    assert len(sdk.calls) == 3  # Mercado Pago was not called
    assert isinstance(fast.value, GatewayUnavailable)
    assert 0 < fast.value.retry_after <= 30
    with pytest.raises(CircuitOpen):
        gateway.refund_order("ORD1", idempotency_key="k")
    assert len(sdk.calls) == 3


def test_after_the_cooldown_one_trial_call_goes_through_and_its_success_closes_the_breaker(settings):
    settings.MERCADOPAGO_MAX_RETRIES = 0
    sdk = FakeSdk(*[answer(503)] * 3)
    gateway = MercadoPago(sdk)
    for _ in range(3):
        with pytest.raises(GatewayUnavailable):
            gateway.get_order("ORD1")
    assert breaker.current_state == pybreaker.STATE_OPEN
    cooldown_passes()

    during_trial = []

    def another_call_meanwhile():
        during_trial.append(breaker.current_state)
        with pytest.raises(CircuitOpen) as exc:  # half-open: only the trial goes through
            gateway.get_payment("P1")
        during_trial.append(exc.value.retry_after)

    sdk.during_call = another_call_meanwhile
    assert gateway.get_order("ORD1") == OK["response"]
    assert during_trial == [pybreaker.STATE_HALF_OPEN, 1]
    assert len(sdk.calls) == 4  # the trial only; the call made meanwhile did not reach the SDK
    assert breaker.current_state == pybreaker.STATE_CLOSED and breaker.fail_counter == 0
    assert breaker_gauge() == 0
    assert gateway.get_payment("P1") == OK["response"]


def test_a_failed_trial_opens_the_breaker_again(settings):
    settings.MERCADOPAGO_MAX_RETRIES = 2
    sdk = FakeSdk(*[answer(503)] * 4)
    gateway = MercadoPago(sdk)
    with pytest.raises(GatewayUnavailable):
        gateway.get_order("ORD1")
    assert breaker.current_state == pybreaker.STATE_OPEN
    cooldown_passes()
    with pytest.raises(GatewayUnavailable) as exc:
        gateway.get_order("ORD1")
    assert len(sdk.calls) == 4  # one trial, no retry once it failed
    assert breaker.current_state == pybreaker.STATE_OPEN
    assert exc.value.retry_after >= 29


def test_the_settings_are_read_at_each_call(settings):
    settings.MERCADOPAGO_MAX_RETRIES = 0
    settings.MERCADOPAGO_BREAKER_THRESHOLD = 1
    settings.MERCADOPAGO_BREAKER_COOLDOWN = 7
    with pytest.raises(GatewayUnavailable) as exc:
        MercadoPago(FakeSdk(answer(503))).get_order("ORD1")
    assert breaker.current_state == pybreaker.STATE_OPEN
    assert (breaker.fail_max, breaker.reset_timeout) == (1, 7)
    assert 6 <= exc.value.retry_after <= 7


def test_a_call_inside_a_transaction_is_refused_before_the_sdk():
    sdk = FakeSdk()
    with transaction.atomic(), pytest.raises(CalledInsideTransaction):
        MercadoPago(sdk).get_order("ORD1")
    assert sdk.calls == []


def test_every_call_is_timed_by_operation_and_outcome(settings):
    settings.MERCADOPAGO_MAX_RETRIES = 0
    before = {
        key: histogram_count(*key)
        for key in [("get_order", "ok"), ("cancel_order", "rejected"), ("get_payment", "unavailable")]
    }
    sdk = FakeSdk(OK, answer(409, "conflict"), answer(504))
    gateway = MercadoPago(sdk)
    gateway.get_order("ORD1")
    with pytest.raises(GatewayRejected):
        gateway.cancel_order("ORD1", idempotency_key="k")
    with pytest.raises(GatewayUnavailable):
        gateway.get_payment("P1")
    for key, count in before.items():
        assert histogram_count(*key) == count + 1, key


def test_a_slow_call_does_not_hold_up_the_other_threads_calls():
    """pybreaker's own call() keeps its lock while the call runs; ours must not (gunicorn's threads)."""
    import threading

    release, started = threading.Event(), threading.Event()

    class SlowThenFast(FakeSdk):
        def _next(self, *call):
            if call == ("get", "SLOW"):
                started.set()
                release.wait(timeout=10)
            return super()._next(*call)

    sdk = SlowThenFast()
    results = []
    slow = threading.Thread(target=lambda: results.append(MercadoPago(sdk).get_order("SLOW")))
    slow.start()
    try:
        assert started.wait(timeout=5)
        assert MercadoPago(sdk).get_order("FAST") == OK["response"]  # while SLOW is still in flight
        assert results == []
    finally:
        release.set()
        slow.join(timeout=10)
    assert results == [OK["response"]]
