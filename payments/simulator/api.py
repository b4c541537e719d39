"""The simulated Mercado Pago API: one pure dispatcher shared by the HTTP views (/mp-simulator/v1/...) and the
in-process SDK client (client.py).

    dispatch("POST", "/v1/orders", headers={...}, body='{"type": "qr", ...}') -> (201, {...order...})

Implemented, with the documented validation, shapes and errors (see /work/shared/docs/mercadopago.md):

    POST /v1/orders                  create a QR order (X-Idempotency-Key required)
    GET  /v1/orders/{id}             read it (an unpaid order past its expiration reads as expired)
    POST /v1/orders/{id}/cancel      cancel it while still created (X-Idempotency-Key required)
    POST /v1/orders/{id}/refund      refund all (no body) or part ({"transactions": [{"id", "amount"}]})
    GET  /v1/payments/{id}           the Payments API view of the buyer's payment (numeric reference_id)

Anything else is a 404. Every call needs `Authorization: Bearer <token>`; any non-empty token is accepted
(a real-looking APP_USR-<application>-<date>-<hash>-<user> token gives those ids to the orders).

Refunds are asynchronous, as at Mercado Pago: the refund call answers 201 with the new refunds "processing"
(the order's status unchanged); they are settled settings.MERCADOPAGO_SIMULATOR_REFUND_DELAY seconds later
(engine.confirm_refunds), and until then another refund of the order is 409 refund_in_progress.
Notifications are never sent inside a call: they are queued and leave later (see notify.py).

In-process callers share the caller's database connection: when called inside the caller's transaction,
the simulator's writes (the queued notifications included) commit or roll back with it. Every call wakes
the pump (pump.py), so a restarted server catches up with what was due.
"""

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.simulator import engine, pump, shapes
from payments.simulator import notify as notifications
from payments.simulator.errors import ApiError, orders_error, payments_error
from payments.simulator.models import SimIdempotencyKey, SimOrder, SimPayment, SimRefund

JsonBody = dict | list | None

DEFAULT_USER_ID = "1234567890"
DEFAULT_APPLICATION_ID = "9876543210123456"
_TOKEN = re.compile(r"^(?:APP_USR|TEST)-(?P<application>\d+)-\d+-[0-9a-fA-F]+-(?P<user>\d+)$")

ORDER_ID = re.compile(r"^ORD(?:TST)?[0-9A-Z]{26}$")  # sandbox ids are ORDTST + 26
AMOUNT = re.compile(r"^\d{1,10}\.\d{2}$")  # the create-order reference: always two decimals
EXTERNAL_REFERENCE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DURATION = re.compile(
    r"^P(?!$)(?:(?P<Y>\d+)Y)?(?:(?P<MO>\d+)M)?(?:(?P<W>\d+)W)?(?:(?P<D>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<H>\d+)H)?(?:(?P<MI>\d+)M)?(?:(?P<S>\d+(?:\.\d+)?)S)?)?$"
)
DEFAULT_EXPIRATION = "PT15M"
MIN_EXPIRATION = timedelta(seconds=30)
MAX_EXPIRATION = timedelta(hours=3600)  # "minimum of 30 seconds and maximum of 3600 hours" (create-order reference)
QR_MODES = ("static", "dynamic", "hybrid")

# The request fields of a QR order (create-order reference); anything else is refused, as Mercado Pago
# refuses e.g. the legacy "title" and "notification_url" with unsupported_properties.
CREATE_FIELDS = {
    "type",
    "total_amount",
    "description",
    "external_reference",
    "expiration_time",
    "config",
    "transactions",
    "items",
    "discounts",
    "integration_data",
    "taxes",
}
ITEM_FIELDS = {"title", "unit_price", "quantity", "unit_measure", "external_code", "external_categories"}


@dataclass(frozen=True)
class Call:
    """One API request, headers with lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict
    body: bytes
    user_id: str = ""
    application_id: str = ""

    def json(self) -> object:
        """The body as JSON; None when there is none. Text must be text (no lone surrogates) and numbers finite,
        as a real JSON API parser insists, so nothing unstorable gets past this point."""
        if not self.body.strip():
            return None
        try:
            parsed = json.loads(self.body, parse_constant=_refuse_constant)
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError) as exc:
            raise orders_error(400, "json_syntax_error", f"The body is not valid JSON: {exc}.")
        except UnicodeEncodeError:
            raise orders_error(400, "json_syntax_error", "The body holds text that is not valid Unicode.")
        return parsed


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def dispatch(
    method: str,
    path: str,
    *,
    headers: dict,
    params: dict | None = None,
    body: str | bytes | None = None,
) -> tuple[int, JsonBody]:
    """Answer one Mercado Pago API request: (HTTP status, JSON body). Never raises for a bad request."""
    pump.wake()
    method = method.upper()
    path = path.split("?", 1)[0]
    # Header names are case-insensitive; as with `requests`, a later spelling of the same name wins.
    lowered = {str(name).lower(): str(value) for name, value in (headers or {}).items()}
    raw = body.encode() if isinstance(body, str) else (body or b"")
    payments_api = path.startswith("/v1/payments")

    handler = None
    allowed = []
    for route_method, pattern, route_handler in ROUTES:
        match = pattern.match(path)
        if match:
            allowed.append(route_method)
            if route_method == method:
                handler, kwargs = route_handler, match.groupdict()
    try:
        if handler is None:
            if allowed:
                raise _error(payments_api, 405, "method_not_allowed", f"Method {method} not allowed for {path}.")
            raise _error(payments_api, 404, "not_found", f"Resource {path} not found.")
        user_id, application_id = _authenticate(lowered, payments_api)
        call = Call(method, path, lowered, dict(params or {}), raw, user_id, application_id)
        return handler(call, **kwargs)
    except ApiError as exc:
        return exc.status, exc.body


def _error(payments_api: bool, status: int, code: str, message: str) -> ApiError:
    return payments_error(status, code, message) if payments_api else orders_error(status, code, message)


def _authenticate(headers: dict[str, str], payments_api: bool) -> tuple[str, str]:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        if payments_api:
            raise payments_error(401, "unauthorized", "invalid access token")
        raise orders_error(401, "unauthorized", "The access token is missing or invalid.")
    match = _TOKEN.match(token)
    if match and len(match["user"]) <= 32 and len(match["application"]) <= 32:  # what the ids' columns hold
        return match["user"], match["application"]
    return DEFAULT_USER_ID, DEFAULT_APPLICATION_ID


# --- Idempotency ----------------------------------------------------------------------------------


def _fingerprint(call: Call) -> str:
    """What "the same request" means: method, path and body (JSON compared by content, not spelling)."""
    try:
        parsed = json.loads(call.body) if call.body.strip() else None
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):
        canonical = call.body.decode(errors="replace")
    return hashlib.sha256(f"{call.method} {call.path}\n{canonical}".encode()).hexdigest()


def _idempotent(call: Call, action: Callable[[], tuple[int, JsonBody, SimOrder]], *, replay_order: bool = False):
    """Run `action` once per X-Idempotency-Key: the same key with the same request gets the first answer back
    (for a create, the order as it is now); with a different request, 409 idempotency_key_already_used.
    Only successful answers use up a key: a refused request can be corrected and sent with the same key."""
    key = call.headers.get("x-idempotency-key", "").strip()
    if not key:
        raise orders_error(
            400, "empty_required_header", "The header X-Idempotency-Key is required.", ["X-Idempotency-Key"]
        )
    if len(key) > 128:
        raise orders_error(400, "invalid_idempotency_key_length", "X-Idempotency-Key length exceeds 128 characters.")
    fingerprint = _fingerprint(call)

    def replay(record: SimIdempotencyKey) -> tuple[int, JsonBody]:
        if record.fingerprint != fingerprint:
            raise orders_error(
                409,
                "idempotency_key_already_used",
                "The X-Idempotency-Key was already used with a different request in the last 24 hours.",
            )
        if replay_order and record.order_id:
            with transaction.atomic():
                order = engine.lock_order(record.order_id)
                engine.expire_if_due(order)
                return record.response_status, shapes.order_json(order)
        return record.response_status, record.response_body

    try:
        with transaction.atomic():
            record = SimIdempotencyKey.objects.filter(user_id=call.user_id, key=key).first()
            if record is not None:
                return replay(record)
            status, body, order = action()
            SimIdempotencyKey.objects.create(
                user_id=call.user_id,
                key=key,
                fingerprint=fingerprint,
                order=order,
                response_status=status,
                response_body=body,
                created_at=timezone.now(),
            )
            return status, body
    except IntegrityError:
        # Someone else used the key at the same moment and won: answer as for a retry of theirs.
        record = SimIdempotencyKey.objects.filter(user_id=call.user_id, key=key).first()
        if record is None:
            raise
        return replay(record)


# --- Validation helpers ---------------------------------------------------------------------------


def _amount(value: object, where: str) -> Decimal:
    """An Orders API amount: a string with two decimals, more than zero."""
    if not isinstance(value, str):
        raise orders_error(400, "property_type", f"{where} must be a string.", [where])
    if not AMOUNT.match(value) or Decimal(value) <= 0:
        raise orders_error(
            400, "property_value", f"{where} must be a positive amount with two decimals, e.g. 25.90.", [where]
        )
    return Decimal(value)


def parse_duration(value: str) -> timedelta | None:
    """An ISO-8601 duration (PT15M, P1DT2H, PT30S...) as a timedelta; None if it is not one.
    Years and months count as 365 and 30 days (both are beyond the allowed maximum anyway)."""
    match = DURATION.match(value)
    if not match:
        return None
    parts = {name: float(number) if number else 0.0 for name, number in match.groupdict().items()}
    days = parts["Y"] * 365 + parts["MO"] * 30 + parts["W"] * 7 + parts["D"]
    try:
        return timedelta(days=days, hours=parts["H"], minutes=parts["MI"], seconds=parts["S"])
    except (OverflowError, ValueError):  # absurdly long: not a duration Mercado Pago would take either
        return None


def _require_type(value: object, kind: type | tuple, where: str, type_name: str) -> None:
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise orders_error(400, "property_type", f"{where} must be {type_name}.", [where])


def _validate_items(items: object) -> list[dict]:
    _require_type(items, list, "$.items", "an array")
    for index, item in enumerate(items):
        where = f"$.items[{index}]"
        _require_type(item, dict, where, "an object")
        unknown = sorted(set(item) - ITEM_FIELDS)
        if unknown:
            raise orders_error(
                400, "unsupported_properties", "Unsupported properties.", [f"{where}.{name}" for name in unknown]
            )
        missing = [name for name in ("title", "unit_price", "quantity") if name not in item]
        if missing:
            raise orders_error(
                400, "required_properties", "Missing required properties.", [f"{where}.{name}" for name in missing]
            )
        _require_type(item["title"], str, f"{where}.title", "a string")
        if not item["title"].strip() or len(item["title"]) > 150:
            raise orders_error(400, "property_value", "title must have 1 to 150 characters.", [f"{where}.title"])
        _amount(item["unit_price"], f"{where}.unit_price")
        _require_type(item["quantity"], int, f"{where}.quantity", "an integer")
        if item["quantity"] < 1:
            raise orders_error(400, "property_value", "quantity must be at least 1.", [f"{where}.quantity"])
        if "unit_measure" in item:
            _require_type(item["unit_measure"], str, f"{where}.unit_measure", "a string")
            if len(item["unit_measure"]) > 10:
                raise orders_error(
                    400, "property_value", "unit_measure has at most 10 characters.", [f"{where}.unit_measure"]
                )
        if "external_code" in item:
            _require_type(item["external_code"], str, f"{where}.external_code", "a string")
        if "external_categories" in item:
            categories = item["external_categories"]
            _require_type(categories, list, f"{where}.external_categories", "an array")
            for position, category in enumerate(categories):
                cat_where = f"{where}.external_categories[{position}]"
                _require_type(category, dict, cat_where, "an object")
                _require_type(category.get("id"), str, f"{cat_where}.id", "a string")
    return items


def _validate_create(data: object) -> dict:
    """Check a create-order body the way the QR create-order reference describes it; return the cleaned values."""
    if data is None:
        raise orders_error(
            400,
            "required_properties",
            "Missing required properties.",
            ["$.type", "$.total_amount", "$.external_reference", "$.config", "$.transactions"],
        )
    _require_type(data, dict, "$", "an object")
    unknown = sorted(set(data) - CREATE_FIELDS)
    if unknown:
        raise orders_error(400, "unsupported_properties", "Unsupported properties.", [f"$.{name}" for name in unknown])
    missing = [
        f"$.{name}"
        for name in ("type", "total_amount", "external_reference", "config", "transactions")
        if name not in data
    ]
    if missing:
        raise orders_error(400, "required_properties", "Missing required properties.", missing)

    _require_type(data["type"], str, "$.type", "a string")
    if data["type"] != "qr":
        raise orders_error(400, "property_value", "type must be qr (the only type this simulator knows).", ["$.type"])
    total = _amount(data["total_amount"], "$.total_amount")

    reference = data["external_reference"]
    _require_type(reference, str, "$.external_reference", "a string")
    if not EXTERNAL_REFERENCE.match(reference):
        raise orders_error(
            400,
            "property_value",
            "external_reference must have 1 to 64 characters: letters, digits, '-' and '_'.",
            ["$.external_reference"],
        )

    description = data.get("description", "")
    _require_type(description, str, "$.description", "a string")
    if len(description) > 150:
        raise orders_error(400, "property_value", "description has at most 150 characters.", ["$.description"])

    expiration_time = data.get("expiration_time", DEFAULT_EXPIRATION)
    _require_type(expiration_time, str, "$.expiration_time", "a string")
    duration = parse_duration(expiration_time) if len(expiration_time) <= 40 else None
    if duration is None:
        raise orders_error(
            400, "property_value", "expiration_time must be an ISO-8601 duration, e.g. PT15M.", ["$.expiration_time"]
        )
    if not MIN_EXPIRATION <= duration <= MAX_EXPIRATION:
        raise orders_error(
            400, "property_value", "expiration_time must be between PT30S and PT3600H.", ["$.expiration_time"]
        )

    config = data["config"]
    _require_type(config, dict, "$.config", "an object")
    qr = config.get("qr")
    if qr is None:
        raise orders_error(400, "required_properties", "Missing required properties.", ["$.config.qr"])
    _require_type(qr, dict, "$.config.qr", "an object")
    pos = qr.get("external_pos_id")
    if pos is None:
        raise orders_error(400, "required_properties", "Missing required properties.", ["$.config.qr.external_pos_id"])
    _require_type(pos, str, "$.config.qr.external_pos_id", "a string")
    if not pos.strip() or len(pos) > 64:
        raise orders_error(
            400, "property_value", "external_pos_id must have 1 to 64 characters.", ["$.config.qr.external_pos_id"]
        )
    mode = qr.get("mode", "static")  # Mercado Pago's default when mode is left out is the static model
    _require_type(mode, str, "$.config.qr.mode", "a string")
    if mode not in QR_MODES:
        raise orders_error(400, "property_value", "mode must be static, dynamic or hybrid.", ["$.config.qr.mode"])

    transactions = data["transactions"]
    _require_type(transactions, dict, "$.transactions", "an object")
    payments = transactions.get("payments")
    if payments is None:
        raise orders_error(400, "required_properties", "Missing required properties.", ["$.transactions.payments"])
    _require_type(payments, list, "$.transactions.payments", "an array")
    if not payments:
        raise orders_error(400, "minimum_items", "A QR order needs one payment.", ["$.transactions.payments"])
    if len(payments) > 1:
        raise orders_error(400, "maximum_items", "A QR order has exactly one payment.", ["$.transactions.payments"])
    payment = payments[0]
    _require_type(payment, dict, "$.transactions.payments[0]", "an object")
    unknown = sorted(set(payment) - {"amount"})
    if unknown:
        raise orders_error(
            400,
            "unsupported_properties",
            "Unsupported properties.",
            [f"$.transactions.payments[0].{name}" for name in unknown],
        )
    if "amount" not in payment:
        raise orders_error(
            400, "required_properties", "Missing required properties.", ["$.transactions.payments[0].amount"]
        )
    payment_amount = _amount(payment["amount"], "$.transactions.payments[0].amount")
    if payment_amount != total:
        raise orders_error(
            400,
            "invalid_total_amount",
            "total_amount must be the sum of the transactions' amounts.",
            ["$.total_amount"],
        )

    items = _validate_items(data["items"]) if "items" in data else []
    extra = {}
    for name, kind, type_name in (("discounts", dict, "an object"), ("integration_data", dict, "an object")):
        if name in data:
            _require_type(data[name], kind, f"$.{name}", type_name)
            extra[name] = data[name]
    if "taxes" in data:
        _require_type(data["taxes"], list, "$.taxes", "an array")
        extra["taxes"] = data["taxes"]
    return {
        "total": total,
        "external_reference": reference,
        "description": description,
        "expiration_time": expiration_time,
        "duration": duration,
        "external_pos_id": pos,
        "mode": mode,
        "payment_amount": payment_amount,
        "items": items,
        "extra": extra,
    }


def _order_id(order_id: str) -> str:
    if not ORDER_ID.match(order_id):
        raise orders_error(
            400,
            "invalid_path_param",
            "The order id is invalid: it begins with the prefix ORD followed by 26 characters.",
        )
    return order_id


# --- Handlers -------------------------------------------------------------------------------------


def create_order(call: Call) -> tuple[int, JsonBody]:
    def action():
        values = _validate_create(call.json())
        now = timezone.now()
        order = SimOrder.objects.create(
            id=shapes.new_order_id(),
            user_id=call.user_id,
            application_id=call.application_id,
            external_reference=values["external_reference"],
            description=values["description"],
            total_amount=values["total"],
            external_pos_id=values["external_pos_id"],
            mode=values["mode"],
            expiration_time=values["expiration_time"],
            expires_at=now + values["duration"],
            status="created",
            status_detail="created",
            items=values["items"],
            extra=values["extra"],
            notification_url=settings.MERCADOPAGO_NOTIFICATION_URL,
            created_date=now,
            last_updated_date=now,
        )
        # The transaction waits for the buyer: created/ready_to_process (the order itself is created/created).
        SimPayment.objects.create(
            id=shapes.new_payment_id(),
            order=order,
            amount=values["payment_amount"],
            status="created",
            status_detail="ready_to_process",
        )
        return 201, shapes.order_json(order), order

    return _idempotent(call, action, replay_order=True)


def get_order(call: Call, order_id: str) -> tuple[int, JsonBody]:
    _order_id(order_id)
    with transaction.atomic():
        order = engine.lock_order(order_id)
        engine.expire_if_due(order)
        return 200, shapes.order_json(order)


def cancel_order(call: Call, order_id: str) -> tuple[int, JsonBody]:
    _order_id(order_id)

    def action():
        order = engine.lock_order(order_id)
        engine.expire_if_due(order)
        if order.status == "canceled":
            raise orders_error(409, "order_already_canceled", "The order is already canceled.")
        if order.status != "created":
            raise orders_error(
                409, "cannot_cancel_order", f"The order is {order.status}; only a created order can be canceled."
            )
        now = timezone.now()
        order.status = order.status_detail = "canceled"
        engine.touch(order, now)
        order.save()
        order.payments.update(status="canceled", status_detail="canceled_by_api", date_last_updated=now)
        notifications.queue_order_notification(order, "order.canceled")
        return 200, shapes.order_json(order), order

    return _idempotent(call, action)


def _refund_amounts(data: object, order: SimOrder) -> dict[str, Decimal]:
    """{payment id: amount to refund}; no body means everything still refundable. Processing refunds keep
    their amount reserved; failed ones gave it back."""
    refundable = {
        payment.id: payment.paid_amount
        - sum((r.amount for r in payment.refunds.exclude(status="failed")), Decimal("0"))
        for payment in order.payments.filter(status="processed", paid_amount__isnull=False)
    }
    if data is None:
        wanted = {pid: amount for pid, amount in refundable.items() if amount > 0}
        if not wanted:
            raise orders_error(409, "order_already_refunded", "The order is already fully refunded.")
        return wanted

    _require_type(data, dict, "$", "an object")
    unknown = sorted(set(data) - {"transactions"})
    if unknown:
        raise orders_error(400, "unsupported_properties", "Unsupported properties.", [f"$.{name}" for name in unknown])
    transactions = data.get("transactions")
    if transactions is None:
        raise orders_error(
            400, "required_properties", "Missing required properties (send no body for a full refund).",
            ["$.transactions"],
        )  # fmt: skip
    _require_type(transactions, list, "$.transactions", "an array")
    if not transactions:
        raise orders_error(400, "minimum_items", "transactions needs at least one item.", ["$.transactions"])
    wanted: dict[str, Decimal] = {}
    for index, item in enumerate(transactions):
        where = f"$.transactions[{index}]"
        _require_type(item, dict, where, "an object")
        missing = [f"{where}.{name}" for name in ("id", "amount") if name not in item]
        if missing:
            raise orders_error(400, "required_properties", "Missing required properties.", missing)
        _require_type(item["id"], str, f"{where}.id", "a string")
        amount = _amount(item["amount"], f"{where}.amount")
        if not order.payments.filter(pk=item["id"]).exists():
            raise orders_error(404, "transaction_not_found", "Transaction not found in the order.", [f"{where}.id"])
        wanted[item["id"]] = wanted.get(item["id"], Decimal("0")) + amount
    for payment_id, amount in wanted.items():
        if amount > refundable.get(payment_id, Decimal("0")):
            raise orders_error(
                400, "refund_amount_exceeds", "The refund amount exceeds the available amount.", ["$.transactions"]
            )
    return wanted


def refund_order(call: Call, order_id: str) -> tuple[int, JsonBody]:
    _order_id(order_id)

    def action():
        order = engine.lock_order(order_id)
        if order.user_id != call.user_id:
            raise orders_error(400, "invalid_order_owner", "The order was not created by this access token's user.")
        engine.expire_if_due(order)
        if order.status == "refunded":
            raise orders_error(409, "order_already_refunded", "The order is already fully refunded.")
        if order.status != "processed":
            raise orders_error(
                409, "cannot_refund_order", f"The order is {order.status}; only a processed order can be refunded."
            )
        if SimRefund.objects.filter(payment__order=order, status="processing").exists():
            raise orders_error(409, "refund_in_progress", "A refund is already being processed for this order.")
        wanted = _refund_amounts(call.json(), order)
        now = timezone.now()
        confirm_at = now + timedelta(seconds=settings.MERCADOPAGO_SIMULATOR_REFUND_DELAY)
        created = [
            SimRefund.objects.create(
                id=shapes.new_refund_id(),
                payment_id=payment_id,
                amount=amount,
                status="processing",
                reference_id=shapes.new_numeric_id(),
                created_date=now,
                confirm_at=confirm_at,
                outcome="processed",
            )
            for payment_id, amount in wanted.items()
        ]
        engine.touch(order, now)
        order.save()
        # Settled (and notified as order.refunded) at confirm_at, by the pump or by whoever reads the order.
        transaction.on_commit(pump.wake)
        body = {
            "id": order.id,
            "status": order.status,
            "status_detail": order.status_detail,
            "transactions": {"refunds": [shapes.refund_json(refund) for refund in created]},
        }
        return 201, body, order

    return _idempotent(call, action)


def get_payment(call: Call, payment_id: str) -> tuple[int, JsonBody]:
    payment = None
    if re.fullmatch(r"[0-9]{1,18}", payment_id):
        payment = SimPayment.objects.select_related("order").filter(reference_id=int(payment_id)).first()
    if payment is None:
        raise payments_error(
            404, "not_found", "Payment not found", [{"code": 2000, "description": "Payment not found", "data": None}]
        )
    return 200, shapes.payment_json(payment)


ROUTES: list[tuple[str, re.Pattern, Callable[..., tuple[int, JsonBody]]]] = [
    ("POST", re.compile(r"^/v1/orders$"), create_order),
    ("GET", re.compile(r"^/v1/orders/(?P<order_id>[^/]+)$"), get_order),
    ("POST", re.compile(r"^/v1/orders/(?P<order_id>[^/]+)/cancel$"), cancel_order),
    ("POST", re.compile(r"^/v1/orders/(?P<order_id>[^/]+)/refund$"), refund_order),
    ("GET", re.compile(r"^/v1/payments/(?P<payment_id>[^/]+)$"), get_payment),
]
