"""The one door to Mercado Pago: the official SDK, with our own timeouts, retries and circuit breaker.

Live mode (MERCADOPAGO_ACCESS_TOKEN set): the SDK's requests go to MERCADOPAGO_API_BASE_URL through
`BaseUrlHttpClient`, a subclass of the SDK's own HttpClient, so the SDK's code path is the one used.
Simulator mode (no token): the SDK's requests are dispatched in-process to our simulator, so a server
never waits on itself over HTTP.

Mercado Pago is never called inside a database transaction or while a row lock is held: `_call` refuses to
(`CalledInsideTransaction`), so a service that forgets "lock, decide, commit, call" fails in the tests.

Retries are tenacity's: timeouts, connection errors, malformed JSON, 408, 425, 429 and 5xx get up to
MERCADOPAGO_MAX_RETRIES more attempts, after 0.2 s, 0.4 s, ... (at most 2 s), each wait with +-50 % jitter.
The circuit breaker is pybreaker's, one per process (each gunicorn worker and each task worker has its own):
every transient failed attempt counts, a success or a 4xx resets the count; MERCADOPAGO_BREAKER_THRESHOLD
failures in a row open it, and for MERCADOPAGO_BREAKER_COOLDOWN seconds calls fail at once without reaching
Mercado Pago; then it is half-open and lets one trial call through (a success closes it, a failure opens it
again). Both settings are read at every call. The SDK call runs outside pybreaker's lock (see `_Breaker`), so
a slow Mercado Pago never queues a process's threads behind one another.

Callers get plain dicts (Mercado Pago's JSON) or one of two errors:
- `GatewayUnavailable`: timeouts, connection errors, 429 and 5xx (after retries), or the breaker is open
  (`CircuitOpen`, a subclass; `retry_after` says when the breaker lets a call through again).
  Nothing is known to have happened; retrying later is safe because every write carries an idempotency key.
  A 2xx whose body is not a JSON object (malformed JSON, `[]`, a proxy's HTML page) is one of these too.
- `GatewayRejected`: Mercado Pago answered 4xx; its error code and message are kept for the people involved.
  `AnswerMismatch`, a subclass: Mercado Pago made a QR order other than the one asked for (another amount,
  no QR); it must be cancelled there and never shown.

Each `_call` is timed, retries included, in `kiosk_mercadopago_call_seconds` (operation, outcome), and the
breaker's state is the `kiosk_mercadopago_circuit_breaker_state` gauge (kiosk/metrics.py).
"""

import contextlib
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import mercadopago
import pybreaker
import requests
import tenacity
from django.conf import settings
from django.db import transaction
from mercadopago.config import RequestOptions
from mercadopago.errors.exceptions import MercadoPagoError
from mercadopago.http import HttpClient

from kiosk import metrics

logger = logging.getLogger(__name__)
SDK_BASE_URL = "https://api.mercadopago.com"
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class GatewayError(Exception):
    refund_id = None  # set by refunds.refund_attempt: the refund held for a retry when Mercado Pago did not answer

    def __init__(self, message: str, *, status: int | None = None, code: str = "", body=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body = body


class GatewayUnavailable(GatewayError):
    retry_after = 5


class CircuitOpen(GatewayUnavailable):
    """The breaker answered: Mercado Pago was not called."""


class GatewayRejected(GatewayError):
    pass


class AnswerMismatch(GatewayRejected):
    """Mercado Pago made something other than what we asked for (an order for another amount, or with no QR):
    it exists at Mercado Pago (`provider_order_id`), and must be cancelled there, never shown to a customer."""

    def __init__(self, message: str, *, provider_order_id: str, body=None):
        super().__init__(message, code="answer_mismatch", body=body)
        self.provider_order_id = provider_order_id


class CalledInsideTransaction(RuntimeError):
    """A programming error: Mercado Pago's latency would be added to every lock the transaction holds."""


def refuse_inside_transaction(what: str) -> None:
    """Raises when the caller is inside an atomic block (the test runner's own wrapping blocks excepted)."""
    blocks = transaction.get_connection().atomic_blocks
    if any(not getattr(block, "_from_testcase", False) for block in blocks):
        raise CalledInsideTransaction(f"{what}: Mercado Pago must not be called inside a database transaction.")


class BaseUrlHttpClient(HttpClient):
    """The SDK's HttpClient, sending to MERCADOPAGO_API_BASE_URL (a staging proxy, a test double)."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, maxretries=None, retry_on=None, backoff_factor=None, **kwargs):
        if url.startswith(SDK_BASE_URL):
            url = self.base_url + url[len(SDK_BASE_URL) :]
        return super().request(
            method, url, maxretries=maxretries, retry_on=retry_on, backoff_factor=backoff_factor, **kwargs
        )


# --- The circuit breaker (pybreaker), per process ---------------------------------------------------


class _TransientFailure(Exception):
    """What `_Breaker.record` replays through pybreaker for a failed attempt (a timeout, a 5xx...)."""


def _replay(ok: bool) -> None:
    if not ok:
        raise _TransientFailure("Mercado Pago did not answer usefully")


class _Breaker(pybreaker.CircuitBreaker):
    """pybreaker's CircuitBreaker (states, counters, listeners), without holding its lock during the call.

    pybreaker's own `call()` keeps its lock while the guarded function runs, which would make a gunicorn
    worker's threads wait for each other's Mercado Pago calls (up to MERCADOPAGO_TIMEOUT each). So the SDK
    call happens outside: `admit()` decides under the lock whether a call may go (and which one is the
    half-open trial), `record()` then feeds the outcome to pybreaker's state machine through `call()`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._trial_in_flight = False

    def configure(self) -> None:
        """The settings of the moment (tests change them; so may an operator, between deploys)."""
        self.fail_max = settings.MERCADOPAGO_BREAKER_THRESHOLD
        self.reset_timeout = settings.MERCADOPAGO_BREAKER_COOLDOWN

    def seconds_until_half_open(self) -> float:
        opened_at = self._state_storage.opened_at
        if opened_at is None:
            return 0.0
        return (opened_at + timedelta(seconds=self.reset_timeout) - datetime.now(UTC)).total_seconds()

    def retry_after(self) -> int:
        """Whole seconds (at least 1) until the breaker lets a call through again."""
        return max(1, math.ceil(self.seconds_until_half_open()))

    def admit(self) -> bool:
        """Raises `CircuitOpen` while open (or half-open with its trial call in flight); else lets the call go.
        Returns True when the call is the half-open trial (it must then be `record`ed with trial=True)."""
        with self._lock:
            state = self.state.name
            if state == pybreaker.STATE_CLOSED:
                return False
            if state == pybreaker.STATE_OPEN:
                if self.seconds_until_half_open() > 0:
                    raise self._open_error()
                self.half_open()
            if self._trial_in_flight:
                raise self._open_error()
            self._trial_in_flight = True
            return True

    def record(self, ok: bool | None, *, trial: bool) -> None:
        """The outcome of an admitted call: True (an answer, 4xx included), False (a transient failure),
        None (an unexpected error: no evidence either way)."""
        with self._lock:
            if trial:
                self._trial_in_flight = False
            # Open: the answer of a call that started before another one opened it; it changes nothing.
            if ok is None or self.current_state == pybreaker.STATE_OPEN:
                return
            with contextlib.suppress(_TransientFailure, pybreaker.CircuitBreakerError):
                self.call(_replay, ok)  # pybreaker counts it, opens or closes, tells the listeners

    def reset(self) -> None:
        """Closed, no failures counted (tests; a process that knows better)."""
        with self._lock:
            self._trial_in_flight = False
            self.close()

    def _open_error(self) -> CircuitOpen:
        error = CircuitOpen("Mercado Pago is unreachable; not trying again for a few seconds.")
        error.retry_after = self.retry_after()
        return error


class _LogListener(pybreaker.CircuitBreakerListener):
    def state_change(self, cb, old_state, new_state):
        old = old_state.name if old_state is not None else None
        if new_state.name == pybreaker.STATE_OPEN:
            logger.error("Mercado Pago circuit breaker open for %ss", cb.reset_timeout)
        elif new_state.name == pybreaker.STATE_HALF_OPEN:
            logger.warning("Mercado Pago circuit breaker half-open: one trial call goes through")
        elif old not in (None, pybreaker.STATE_CLOSED):
            logger.info("Mercado Pago circuit breaker closed: Mercado Pago answers again")


class _MetricsListener(pybreaker.CircuitBreakerListener):
    def state_change(self, cb, old_state, new_state):
        metrics.observe_breaker_state(new_state.name)


breaker = _Breaker(
    fail_max=settings.MERCADOPAGO_BREAKER_THRESHOLD,
    reset_timeout=settings.MERCADOPAGO_BREAKER_COOLDOWN,
    listeners=[_LogListener(), _MetricsListener()],
    name="mercadopago",
)


# --- Retries (tenacity) ------------------------------------------------------------------------------

# min(2, 0.2 * 2**n) * uniform(0.5, 1.5): half the exponential step, plus a random part of up to the whole step.
_BACKOFF = tenacity.wait_exponential(multiplier=0.1, max=1.0) + tenacity.wait_random_exponential(
    multiplier=0.2, max=2.0
)


def _sleep(seconds: float) -> None:
    """The wait between attempts (tests replace it)."""
    time.sleep(seconds)


def _worth_retrying(exc: BaseException) -> bool:
    """A transient failure, unless the breaker is open now (this very failure may have opened it)."""
    return (
        isinstance(exc, GatewayUnavailable)
        and not isinstance(exc, CircuitOpen)
        and breaker.current_state != pybreaker.STATE_OPEN
    )


def _error_details(body) -> tuple[str, str]:
    """(code, message) from either of Mercado Pago's error shapes."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            details = first.get("details") or []
            message = first.get("message") or ""
            if details:
                message = f"{message} ({'; '.join(str(d) for d in details)})"
            return str(first.get("code") or ""), message
        cause = body.get("cause")
        if isinstance(cause, list) and cause and isinstance(cause[0], dict):
            return str(cause[0].get("code") or body.get("error") or ""), str(
                cause[0].get("description") or body.get("message") or ""
            )
        return str(body.get("code") or body.get("error") or ""), str(body.get("message") or "")
    return "", ""


def money(value: Decimal) -> str:
    """Mercado Pago's Orders API wants amounts as strings with two decimals."""
    return f"{Decimal(value).quantize(Decimal('0.01'))}"


def iso_duration(delta) -> str:
    seconds = max(30, int(delta.total_seconds()))  # Mercado Pago's minimum is 30 s
    minutes, seconds = divmod(seconds, 60)
    return f"PT{minutes}M{seconds}S" if seconds else f"PT{minutes}M"


class MercadoPago:
    """The small interface the rest of the code uses: create_qr_order, get_order, cancel_order, refund_order."""

    def __init__(self, sdk: mercadopago.SDK | None = None):
        self.sdk = sdk or build_sdk()

    def _options(self, idempotency_key: str | None = None) -> RequestOptions:
        headers = {"x-idempotency-key": idempotency_key} if idempotency_key else None
        # The SDK's own retries are off (they skip POST and only work over https): ours are below.
        return RequestOptions(
            connection_timeout=settings.MERCADOPAGO_TIMEOUT, custom_headers=headers, max_retries=0, retry_on=[]
        )

    def _call(self, what: str, fn, *, retries: int | None = None, operation: str = "other") -> dict:
        """`fn()` (one SDK call) with our retries and the breaker; `operation` labels the latency metric."""
        retries = settings.MERCADOPAGO_MAX_RETRIES if retries is None else retries
        refuse_inside_transaction(what)
        breaker.configure()
        started, outcome = time.monotonic(), "unavailable"
        try:
            body = self._with_retries(what, fn, retries)
            outcome = "ok"
            return body
        except GatewayRejected:
            outcome = "rejected"
            raise
        except GatewayUnavailable as error:
            if not isinstance(error, CircuitOpen) and breaker.current_state == pybreaker.STATE_OPEN:
                error.retry_after = breaker.retry_after()  # this call opened it, or found it opened meanwhile
            raise
        finally:
            metrics.MP_CALL_SECONDS.labels(operation=operation, outcome=outcome).observe(time.monotonic() - started)

    def _with_retries(self, what: str, fn, retries: int) -> dict:
        attempts = retries + 1
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=_BACKOFF,
            retry=tenacity.retry_if_exception(_worth_retrying),
            sleep=_sleep,
            reraise=True,  # the last GatewayUnavailable itself, not tenacity's RetryError
        )
        for attempt in retrying:
            with attempt:
                body = self._attempt(what, fn, attempt.retry_state.attempt_number, attempts)
        return body

    def _attempt(self, what: str, fn, number: int, attempts: int) -> dict:
        """One try through the breaker: the answer's body, `GatewayRejected` or `GatewayUnavailable`."""
        trial = breaker.admit()  # CircuitOpen while the breaker is open
        ok = None
        try:
            body = self._answer(what, fn)
            ok = True
            return body
        except GatewayRejected:
            ok = True  # Mercado Pago is up; it just said no
            raise
        except GatewayUnavailable as error:
            ok = False
            logger.warning("%s (attempt %s of %s)", error, number, attempts)
            raise
        finally:
            breaker.record(ok, trial=trial)

    @staticmethod
    def _answer(what: str, fn) -> dict:
        try:
            result = fn()
            status, body = result["status"], result["response"]
        except (requests.RequestException, MercadoPagoError, ValueError) as exc:
            raise GatewayUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            if not isinstance(body, dict):
                # Valid JSON but not an object (a proxy's page, `[]`, `null`): nothing we could act on.
                raise GatewayUnavailable(
                    f"{what}: Mercado Pago answered {status} with {type(body).__name__}, not a JSON object",
                    status=status,
                    body={"raw": str(body)[:500]},
                )
            return body
        code, message = _error_details(body)
        if status not in TRANSIENT_STATUSES:
            raise GatewayRejected(
                f"{what}: Mercado Pago answered {status} {code}: {message}".strip(), status=status, code=code, body=body
            )
        raise GatewayUnavailable(f"{what}: Mercado Pago answered {status} {code}", status=status, body=body)

    def create_qr_order(self, *, reference: str, order, terminal, expiration) -> dict:
        total = money(order.total)
        body = {
            "type": "qr",
            "external_reference": reference,
            "description": f"Pedido #{order.number} - {terminal.store}"[:150],
            "total_amount": total,
            "expiration_time": iso_duration(expiration),
            "config": {"qr": {"external_pos_id": terminal.external_pos_id, "mode": "dynamic"}},
            "transactions": {"payments": [{"amount": total}]},
            "items": [
                {
                    "title": item.product_name[:150],
                    "unit_price": money(item.unit_price),
                    "quantity": item.quantity,
                    "unit_measure": "unit",
                    "external_code": str(item.product_id),
                }
                for item in order.items.all()
            ],
        }
        # Our reference is the idempotency key: a retried creation returns the same Mercado Pago order.
        answer = self._call(
            "create QR order",
            lambda: self.sdk.order().create(body, self._options(reference)),
            operation="create_qr_order",
        )
        _check_created(answer, reference=reference, total=total)
        return answer

    def get_order(self, provider_order_id: str, *, retries: int | None = None) -> dict:
        return self._call(
            f"get order {provider_order_id}",
            lambda: self.sdk.order().get(provider_order_id, self._options()),
            retries=retries,
            operation="get_order",
        )

    def cancel_order(self, provider_order_id: str, *, idempotency_key: str) -> dict:
        return self._call(
            f"cancel order {provider_order_id}",
            lambda: self.sdk.order().cancel(provider_order_id, self._options(idempotency_key)),
            operation="cancel_order",
        )

    def refund_order(
        self, provider_order_id: str, *, idempotency_key: str, transaction_id: str = "", amount: Decimal | None = None
    ) -> dict:
        """Full refund without a body; partial with the transaction and amount."""
        body = {"transactions": [{"id": transaction_id, "amount": money(amount)}]} if amount is not None else None
        return self._call(
            f"refund order {provider_order_id}",
            lambda: self.sdk.order().refund_transaction(provider_order_id, body, self._options(idempotency_key)),
            operation="refund_order",
        )

    def get_payment(self, payment_id: str, *, retries: int | None = None) -> dict:
        return self._call(
            f"get payment {payment_id}",
            lambda: self.sdk.payment().get(payment_id, self._options()),
            retries=retries,
            operation="get_payment",
        )


def _check_created(answer: dict, *, reference: str, total: str) -> None:
    """The order Mercado Pago made is the one we asked for: an id, a QR and our amount.

    No id: nothing usable was answered (GatewayUnavailable; the retry, with the same key, gets the order).
    Another amount or no QR: AnswerMismatch (the order exists and must be cancelled)."""
    order_id = str(answer.get("id") or "")
    if not order_id:
        raise GatewayUnavailable("create QR order: Mercado Pago's answer names no order", body=answer)
    payments = (
        (answer.get("transactions") or {}).get("payments") if isinstance(answer.get("transactions"), dict) else []
    )
    stated = [("total_amount", answer.get("total_amount"))]
    if isinstance(payments, list) and payments and isinstance(payments[0], dict):
        stated.append(("transactions.payments[0].amount", payments[0].get("amount")))
    wrong = [
        f"{where} {value!r}"
        for where, value in stated
        if value not in (None, "") and _cents_or_none(value) != Decimal(total)
    ]
    qr_data = answer.get("type_response", {}).get("qr_data") if isinstance(answer.get("type_response"), dict) else None
    if not wrong and not (isinstance(qr_data, str) and qr_data):
        wrong.append("no QR data")
    if wrong:
        raise AnswerMismatch(
            f"create QR order: Mercado Pago made order {order_id} with {', '.join(wrong)}; we asked for {total} "
            f"(reference {reference})",
            provider_order_id=order_id[:64],
            body=answer,
        )


def _cents_or_none(value) -> Decimal | None:
    try:
        amount = Decimal(str(value))
        return amount.quantize(Decimal("0.01")) if amount.is_finite() else None
    except ArithmeticError:  # not a number, or too large to hold in cents
        return None


def build_sdk() -> mercadopago.SDK:
    if settings.MERCADOPAGO_SIMULATOR:
        from payments.simulator.client import SimulatorHttpClient

        return mercadopago.SDK("APP_USR-SIMULATOR", http_client=SimulatorHttpClient())
    return mercadopago.SDK(
        settings.MERCADOPAGO_ACCESS_TOKEN, http_client=BaseUrlHttpClient(settings.MERCADOPAGO_API_BASE_URL)
    )


def gateway() -> MercadoPago:
    """A gateway for the current settings (cheap to build; tests change settings freely)."""
    return MercadoPago()
