"""Every write to the menu, customers and orders. Views, admin actions and commands call these.

Order status machine (each transition locks the order row first):

    awaiting_payment -> received -> in_preparation -> ready -> completed
    awaiting_payment -> cancelled                      (customer gave up, payment expired, staff)
    received | in_preparation | ready -> cancelled     (only by a full refund before delivery)

Stock: placing an order reserves limited stock with a conditional UPDATE (never below zero); cancelling an
unpaid order puts it back; payment makes the reservation final. Locks are always taken in the same order
(products by id, then the pickup counter; or the order, then products by id), so they cannot deadlock.
"""

import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from kiosk.events.services import emit, emit_order_paid, order_data
from kiosk.metrics import ORDERS_PLACED
from kiosk.problems import DomainError, Invalid, InvalidTransition, OutOfStock, ProductUnavailable
from orders.cpf import normalize_cpf
from orders.models import MAX_MONEY, Category, Customer, Order, OrderItem, PickupCounter, Product, Store, Terminal

logger = logging.getLogger(__name__)
CENT = Decimal("0.01")
Status = Order.Status

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.AWAITING_PAYMENT: frozenset({Status.RECEIVED, Status.CANCELLED}),
    Status.RECEIVED: frozenset({Status.IN_PREPARATION}),
    Status.IN_PREPARATION: frozenset({Status.READY}),
    Status.READY: frozenset({Status.COMPLETED}),
}
KITCHEN_STATUSES = (Status.IN_PREPARATION, Status.READY, Status.COMPLETED)


class UnknownProduct(DomainError):
    status = 400
    code = "unknown_product"


class OrderTooLarge(DomainError):
    status = 422
    code = "order_total_too_large"


class DiningInvalid(Invalid):
    code = "invalid_dining"


class TerminalInactive(DomainError):
    status = 403
    code = "terminal_inactive"


@dataclass(frozen=True)
class ItemRequest:
    product_id: int
    quantity: int
    note: str = ""


# --- Customers ------------------------------------------------------------------------------------


def customer_identify(*, cpf: str, name: str = "", email: str = "") -> tuple[Customer, bool]:
    """Finds the customer with this CPF or creates one. Returns (customer, created).

    A known customer's name and e-mail are only filled in when empty: anyone can type a CPF at a kiosk,
    so a kiosk must not be able to overwrite someone else's details.
    """
    try:
        digits = normalize_cpf(cpf)
    except ValidationError as exc:
        raise Invalid(exc.messages[0], errors={"cpf": exc.messages}) from None
    customer, created = Customer.objects.get_or_create(cpf=digits, defaults={"name": name, "email": email})
    if not created:
        changed = {f: v for f, v in (("name", name), ("email", email)) if v and not getattr(customer, f)}
        if changed:
            Customer.objects.filter(pk=customer.pk).update(**changed, updated_at=timezone.now())
            for field, value in changed.items():
                setattr(customer, field, value)
    return customer, created


# --- Menu -----------------------------------------------------------------------------------------


def product_create(*, category: Category, **fields) -> Product:
    product = Product(category=category, **fields)
    product.full_clean()
    product.save()
    return product


@transaction.atomic
def product_update(*, product_id: int, **fields) -> Product:
    product = Product.objects.select_for_update().get(pk=product_id)
    for field, value in fields.items():
        setattr(product, field, value)
    product.full_clean()
    product.save()
    return product


def product_deactivate(*, product_id: int) -> Product:
    """Products are never deleted (old orders point at them); they leave the menu."""
    return product_update(product_id=product_id, active=False)


# --- Orders ---------------------------------------------------------------------------------------


def _merge_quantities(items: Iterable[ItemRequest]) -> "OrderedDict[int, int]":
    wanted: OrderedDict[int, int] = OrderedDict()
    for item in items:
        wanted[item.product_id] = wanted.get(item.product_id, 0) + item.quantity
    return wanted


def _reserve_stock(products: dict[int, Product], wanted: dict[int, int]) -> None:
    """Takes limited stock with one conditional UPDATE per product, in id order; all or nothing."""
    for product_id in sorted(wanted):
        product = products[product_id]
        if product.stock is None:
            continue
        taken = Product.objects.filter(pk=product_id, active=True, stock__gte=wanted[product_id]).update(
            stock=F("stock") - wanted[product_id]
        )
        if not taken:
            current = Product.objects.filter(pk=product_id).values("active", "stock").first()
            if not current["active"]:
                raise ProductUnavailable(product_id=product_id, product_name=product.name)
            raise OutOfStock(product_id=product_id, product_name=product.name, available=current["stock"] or 0)


def _release_stock(items: Iterable[OrderItem]) -> None:
    wanted = _merge_quantities(ItemRequest(i.product_id, i.quantity) for i in items)
    for product_id in sorted(wanted):
        Product.objects.filter(pk=product_id, stock__isnull=False).update(stock=F("stock") + wanted[product_id])


def store_business_date(store: Store):
    """Today in the store's own time zone: its pickup numbers restart at its midnight."""
    return timezone.localdate(timezone=ZoneInfo(store.time_zone))


def _next_pickup_number(store: Store, day) -> int:
    """The store's next number: a lock on its own counter row, so stores never wait on each other."""
    counter = PickupCounter.objects.select_for_update().filter(store=store).first()
    if counter is None:  # a store's counter is made with the store; only rows deleted by hand lack it
        PickupCounter.objects.get_or_create(store=store, defaults={"day": day})
        counter = PickupCounter.objects.select_for_update().get(store=store)
    if counter.day != day:
        counter.day, counter.last_number = day, 0
    counter.last_number += 1
    counter.save(update_fields=["day", "last_number"])
    return counter.last_number


def _dining_for(store: Store, dining: str) -> str:
    offered = [
        choice
        for choice, on in ((Order.Dining.EAT_IN, store.offers_eat_in), (Order.Dining.TAKEAWAY, store.offers_takeaway))
        if on
    ]
    if not dining:
        if len(offered) == 1:
            return offered[0]
        raise DiningInvalid(
            "Say whether the order is eaten here or taken away.",
            errors={"dining": [f"Required at {store.name}: one of {', '.join(offered)}."]},
        )
    if dining not in offered:
        raise DiningInvalid(
            f"{store.name} does not offer '{dining}'.", errors={"dining": [f"One of {', '.join(offered)}."]}
        )
    return dining


@transaction.atomic
def order_place(
    *,
    terminal: Terminal,
    items: list[ItemRequest],
    customer_cpf: str | None = None,
    cpf_on_receipt: bool = False,
    dining: str = "",
) -> Order:
    """Places an order from a kiosk: prices come from the menu, never from the client. Emits `order.placed`."""
    if not terminal.active:
        raise TerminalInactive(f"Terminal '{terminal.name}' is disabled; ask a manager to enable it.")
    store = terminal.store
    dining = _dining_for(store, dining)
    if not items:
        raise Invalid("An order needs at least one item.", errors={"items": ["This list may not be empty."]})

    wanted = _merge_quantities(items)
    products = Product.objects.in_bulk(list(wanted))
    for product_id in wanted:
        product = products.get(product_id)
        if product is None:
            raise UnknownProduct(f"Product {product_id} does not exist.", product_id=product_id)
        if not product.active:
            raise ProductUnavailable(product_id=product_id, product_name=product.name)
        if product.stock is not None and product.stock < wanted[product_id]:
            raise OutOfStock(product_id=product_id, product_name=product.name, available=product.stock)

    customer = customer_identify(cpf=customer_cpf)[0] if customer_cpf else None
    _reserve_stock(products, wanted)

    lines = []
    for item in items:
        product = products[item.product_id]
        lines.append(
            OrderItem(
                product=product,
                product_name=product.name,
                unit_price=product.price,
                quantity=item.quantity,
                note=item.note.strip(),
                line_total=(product.price * item.quantity).quantize(CENT),
            )
        )
    total = sum((line.line_total for line in lines), Decimal("0.00"))
    if total > MAX_MONEY:
        raise OrderTooLarge(f"An order may total at most {MAX_MONEY}; this one totals {total}.")

    business_date = store_business_date(store)
    order = Order.objects.create(
        business_date=business_date,
        number=_next_pickup_number(store, business_date),
        store=store,
        terminal=terminal,
        dining=dining,
        customer=customer,
        cpf_on_receipt=bool(cpf_on_receipt and customer),
        total=total,
    )
    for line in lines:
        line.order = order
    OrderItem.objects.bulk_create(lines)
    emit(
        "order.placed",
        order=order,
        data={
            **order_data(order),
            "items": [
                {
                    "product_id": line.product_id,
                    "name": line.product_name,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "line_total": line.line_total,
                    "note": line.note,
                }
                for line in lines
            ],
            "customer_identified": customer is not None,
        },
    )
    logger.info("order placed: #%s %s total=%s terminal=%s", order.number, order.pk, total, terminal.pk)
    transaction.on_commit(ORDERS_PLACED.inc)
    return order


def _transition(*, order_id, target: str, allowed_from=None, **extra_fields) -> tuple[Order, bool]:
    """Locks the order, checks the status machine, records the time of the change.

    Asking for the status the order already has is a no-op (a double tap on a kitchen screen, a retried
    cancel), not an error.
    """
    order = Order.objects.select_for_update().select_related("terminal").get(pk=order_id)
    if order.status == target:
        return order, False
    allowed = order.status in allowed_from if allowed_from else target in ALLOWED_TRANSITIONS.get(order.status, ())
    if not allowed:
        raise InvalidTransition(current=order.status, target=target)
    previous = order.status
    order.status = target
    setattr(order, f"{target}_at", timezone.now())
    for field, value in extra_fields.items():
        setattr(order, field, value)
    order.save(update_fields=["status", f"{target}_at", "updated_at", *extra_fields])
    logger.info("order #%s %s: %s -> %s", order.number, order.pk, previous, target)
    data = {**order_data(order), "previous_status": previous, "cancel_reason": order.cancel_reason or None}
    emit("order.status_changed", order=order, data=data)
    if target == Status.CANCELLED:
        emit("order.cancelled", order=order, data=data)
    return order, True


@transaction.atomic
def order_cancel(*, order_id, reason: str = Order.CancelReason.CUSTOMER) -> Order:
    """Cancels an unpaid order and puts its reserved stock back."""
    return _cancel(order_id=order_id, reason=reason)[0]


def _cancel(*, order_id, reason: str) -> tuple[Order, bool]:
    order, changed = _transition(order_id=order_id, target=Status.CANCELLED, cancel_reason=reason)
    if changed:
        _release_stock(order.items.all())
    return order, changed


@transaction.atomic
def order_mark_paid(*, order_id, method: str = "outside_mercadopago", payment=None) -> Order:
    """awaiting_payment -> received: the money is in, the kitchen may start. Stock reserved stays taken.

    `order.paid` (what the fiscal receipt is issued from) is emitted here, once: only when the order moves,
    never for an order already paid (a double click, a late second payment)."""
    order, changed = _transition(order_id=order_id, target=Status.RECEIVED)
    if changed:
        emit_order_paid(order, method=method, payment=payment)
    return order


@transaction.atomic
def order_advance(*, order_id, status: str) -> Order:
    """The kitchen moves a paid order along: in_preparation, ready, completed."""
    if status not in KITCHEN_STATUSES:
        raise Invalid(
            f"The kitchen can set: {', '.join(KITCHEN_STATUSES)}.", errors={"status": [f"'{status}' is not one."]}
        )
    return _transition(order_id=order_id, target=status)[0]


@transaction.atomic
def order_withdraw_refunded(*, order_id) -> Order:
    """A paid order whose money went back in full before it was handed over leaves the kitchen queue.
    (A refund after delivery keeps the order completed.) Its stock is not put back: food may be made."""
    return _transition(
        order_id=order_id,
        target=Status.CANCELLED,
        allowed_from=(Status.RECEIVED, Status.IN_PREPARATION, Status.READY),
        cancel_reason=Order.CancelReason.REFUNDED,
    )[0]
