"""The one door to Mercado Pago: the official SDK, with our own timeouts, retries and circuit breaker.

Live mode (MERCADOPAGO_ACCESS_TOKEN set): the SDK's requests go to MERCADOPAGO_API_BASE_URL through
`BaseUrlHttpClient`, a subclass of the SDK's own HttpClient, so the SDK's code path is the one used.
Simulator mode (no token): the SDK's requests are dispatched in-process to our simulator, so a server
never waits on itself over HTTP.

Mercado Pago is never called inside a database transaction or while a row lock is held: `_call` refuses to
(`CalledInsideTransaction`), so a service that forgets "lock, decide, commit, call" fails in the tests.

Callers get plain dicts (Mercado Pago's JSON) or one of two errors:
- `GatewayUnavailable`: timeouts, connection errors, 429 and 5xx (after retries), or the breaker is open.
  Nothing is known to have happened; retrying later is safe because every write carries an idempotency key.
- `GatewayRejected`: Mercado Pago answered 4xx; its error code and message are kept for the people involved.
"""

import logging
import random
import threading
import time
from decimal import Decimal

import mercadopago
import requests
from django.conf import settings
from django.db import transaction
from mercadopago.config import RequestOptions
from mercadopago.errors.exceptions import MercadoPagoError
from mercadopago.http import HttpClient

logger = logging.getLogger(__name__)
SDK_BASE_URL = "https://api.mercadopago.com"
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class GatewayError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str = "", body=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body = body


class GatewayUnavailable(GatewayError):
    retry_after = 5


class GatewayRejected(GatewayError):
    pass


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


class CircuitBreaker:
    """Stops calling Mercado Pago for a while after repeated transient failures (per process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.failures = 0
        self.open_until = 0.0

    def check(self) -> None:
        with self._lock:
            remaining = self.open_until - time.monotonic()
        if remaining > 0:
            error = GatewayUnavailable("Mercado Pago is unreachable; not trying again for a few seconds.")
            error.retry_after = max(1, int(remaining + 0.999))
            raise error

    def record(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.failures, self.open_until = 0, 0.0
                return
            self.failures += 1
            if self.failures >= settings.MERCADOPAGO_BREAKER_THRESHOLD:
                self.open_until = time.monotonic() + settings.MERCADOPAGO_BREAKER_COOLDOWN
                logger.error("Mercado Pago circuit breaker open for %ss", settings.MERCADOPAGO_BREAKER_COOLDOWN)

    def reset(self) -> None:
        self.record(True)


breaker = CircuitBreaker()


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

    def _call(self, what: str, fn, *, retries: int | None = None) -> dict:
        retries = settings.MERCADOPAGO_MAX_RETRIES if retries is None else retries
        refuse_inside_transaction(what)
        breaker.check()
        for attempt in range(retries + 1):
            try:
                result = fn()
                status, body = result["status"], result["response"]
            except (requests.RequestException, MercadoPagoError, ValueError) as exc:
                status, body = None, None
                error = GatewayUnavailable(f"{what}: {type(exc).__name__}: {exc}")
            else:
                if 200 <= status < 300:
                    breaker.record(True)
                    return body if isinstance(body, dict) else {}
                code, message = _error_details(body)
                if status not in TRANSIENT_STATUSES:
                    breaker.record(True)  # Mercado Pago is up; it just said no
                    raise GatewayRejected(
                        f"{what}: Mercado Pago answered {status} {code}: {message}".strip(),
                        status=status,
                        code=code,
                        body=body,
                    )
                error = GatewayUnavailable(f"{what}: Mercado Pago answered {status} {code}", status=status, body=body)
            breaker.record(False)
            logger.warning("%s (attempt %s of %s)", error, attempt + 1, retries + 1)
            if attempt < retries:
                time.sleep(min(2.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.5))  # noqa: S311 (jitter)
                breaker.check()
        raise error

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
        return self._call("create QR order", lambda: self.sdk.order().create(body, self._options(reference)))

    def get_order(self, provider_order_id: str, *, retries: int | None = None) -> dict:
        return self._call(
            f"get order {provider_order_id}",
            lambda: self.sdk.order().get(provider_order_id, self._options()),
            retries=retries,
        )

    def cancel_order(self, provider_order_id: str, *, idempotency_key: str) -> dict:
        return self._call(
            f"cancel order {provider_order_id}",
            lambda: self.sdk.order().cancel(provider_order_id, self._options(idempotency_key)),
        )

    def refund_order(
        self, provider_order_id: str, *, idempotency_key: str, transaction_id: str = "", amount: Decimal | None = None
    ) -> dict:
        """Full refund without a body; partial with the transaction and amount."""
        body = {"transactions": [{"id": transaction_id, "amount": money(amount)}]} if amount is not None else None
        return self._call(
            f"refund order {provider_order_id}",
            lambda: self.sdk.order().refund_transaction(provider_order_id, body, self._options(idempotency_key)),
        )

    def get_payment(self, payment_id: str, *, retries: int | None = None) -> dict:
        return self._call(
            f"get payment {payment_id}", lambda: self.sdk.payment().get(payment_id, self._options()), retries=retries
        )


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
