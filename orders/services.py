"""Every write to the menu, customers and orders. Views, admin actions and commands call these.

Order status machine (each transition locks the order row first):

    awaiting_payment -> received -> in_preparation -> ready -> completed
    awaiting_payment -> cancelled                      (customer gave up, payment expired, staff)
    received | in_preparation | ready -> cancelled     (only by a full refund before delivery)

Stock: placing an order reserves limited stock with a conditional UPDATE (never below zero), a combo's
chosen parts as if ordered alone; cancelling an unpaid order puts it back; payment makes the reservation final.
Options: a line's unit price is the product's price plus its options' (and a combo part's own options'),
checked against each option group's min/max choices (`InvalidOptions`). Locks are always taken in the same order
(products by id, then the pickup counter; or the order, then products by id), so they cannot deadlock.
"""

import logging
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext

from kiosk.events.services import emit, emit_order_paid, order_data, order_items
from kiosk.metrics import ORDERS_PLACED
from kiosk.problems import DomainError, Invalid, InvalidTransition, OutOfStock, ProductUnavailable
from orders.cpf import normalize_cpf
from orders.models import (
    MAX_MONEY,
    Category,
    Customer,
    Option,
    OptionGroup,
    Order,
    OrderItem,
    OrderItemOption,
    PickupCounter,
    Product,
    Store,
    Terminal,
)

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


class InvalidOptions(DomainError):
    """Choices on an order line that break the menu's rules: the detail names the product and the group."""

    status = 400
    code = "invalid_options"

    def __init__(self, detail: str, *, product: Product, group: str | None = None, option_id: int | None = None):
        super().__init__(detail, product_id=product.pk, product_name=product.name, group=group, option_id=option_id)


@dataclass(frozen=True)
class OptionRequest:
    """One choice on an order line: an option and how many of it per unit of the line. A combo's slot choice
    (an option naming a product) may carry that product's own options, per unit of the part."""

    option_id: int
    quantity: int = 1
    options: tuple["OptionRequest", ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "options", _option_requests(self.options))


@dataclass(frozen=True)
class ItemRequest:
    product_id: int
    quantity: int
    note: str = ""
    options: tuple[OptionRequest, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "options", _option_requests(self.options))


def _option_requests(options) -> tuple[OptionRequest, ...]:
    """Options as given by a caller: OptionRequests, or the API's dicts ({"option_id", "quantity", "options"})."""
    return tuple(o if isinstance(o, OptionRequest) else OptionRequest(**o) for o in options or ())


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
    # Locked until the caller's transaction ends (an order's, in order_place): an anonymisation of this customer
    # (orders/privacy.py) either ran first, and the CPF is a new customer's, or waits and spares them.
    with transaction.atomic(savepoint=False):
        customer, created = Customer.objects.select_for_update().get_or_create(
            cpf=digits, defaults={"name": name, "email": email}
        )
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


@transaction.atomic
def option_update(*, option_id: int, **fields) -> Option:
    """Changes an option, e.g. `active=False`: the live sold-out switch ("sem bacon hoje")."""
    option = Option.objects.select_for_update().select_related("group__product", "product").get(pk=option_id)
    for field, value in fields.items():
        setattr(option, field, value)
    option.full_clean()
    option.save()
    return option


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
        # updated_at moves with the stock: the menu's Last-Modified follows a product selling out.
        taken = Product.objects.filter(pk=product_id, active=True, stock__gte=wanted[product_id]).update(
            stock=F("stock") - wanted[product_id], updated_at=timezone.now()
        )
        if not taken:
            current = Product.objects.filter(pk=product_id).values("active", "stock").first()
            if not current["active"]:
                raise ProductUnavailable(product_id=product_id, product_name=product.name)
            raise OutOfStock(product_id=product_id, product_name=product.name, available=current["stock"] or 0)


def _release_stock(order: Order) -> None:
    """Puts back what the order reserved: its lines' products and the parts of its combos."""
    items = list(order.items.all())
    wanted = _merge_quantities(ItemRequest(i.product_id, i.quantity) for i in items)
    line_quantity = {item.pk: item.quantity for item in items}
    chosen = {row.pk: row for row in OrderItemOption.objects.filter(item__order=order)}
    for row in chosen.values():
        if row.product_id is None:
            continue
        units, parent = row.quantity * line_quantity[row.item_id], row.parent_id
        while parent is not None:
            units, parent = units * chosen[parent].quantity, chosen[parent].parent_id
        wanted[row.product_id] = wanted.get(row.product_id, 0) + units
    for product_id in sorted(wanted):
        Product.objects.filter(pk=product_id, stock__isnull=False).update(
            stock=F("stock") + wanted[product_id], updated_at=timezone.now()
        )


# --- Options and combos on an order line ----------------------------------------------------------


@dataclass
class _Choice:
    """An option chosen on a line (or on a combo's part), checked against the menu."""

    option: Option
    quantity: int
    options: list["_Choice"]  # a combo part's own options, per unit of the part


def _load_choices(items: list[ItemRequest], products: dict[int, Product]):
    """The options the items name (with their groups and products) and every option group of the products
    involved, the lines' and the combo parts': two queries, whatever the size of the order."""
    ids, pending = set(), [option for item in items for option in item.options]
    while pending:
        request = pending.pop()
        ids.add(request.option_id)
        pending.extend(request.options)
    options = Option.objects.select_related("group", "product").in_bulk(ids) if ids else {}
    product_ids = set(products) | {option.product_id for option in options.values() if option.product_id}
    groups: dict[int, list[OptionGroup]] = defaultdict(list)
    for group in OptionGroup.objects.filter(product_id__in=product_ids).order_by("position", "id"):
        groups[group.product_id].append(group)
    return options, groups


def _check_choices(product: Product, requests, *, options: dict[int, Option], groups) -> list[_Choice]:
    """The choices made on one product (a line's, or a combo part's) if they keep its groups' rules; else
    InvalidOptions naming the group. A part's own options are checked against the part's groups."""
    chosen: list[_Choice] = []
    for request in requests:
        option = options.get(request.option_id)
        if option is None or option.group.product_id != product.pk:
            raise InvalidOptions(
                gettext("Option %(option)s is not one of the options of '%(product)s'.")
                % {"option": request.option_id, "product": product.name},
                product=product,
                option_id=request.option_id,
            )
        group = option.group.name
        where = {"option": option.name, "group": option.group.name, "product": product.name}
        if any(c.option.pk == option.pk for c in chosen):
            raise InvalidOptions(
                gettext("'%(option)s' (%(group)s) of '%(product)s' is chosen twice: send it once, with a quantity.")
                % where,
                product=product,
                group=group,
                option_id=option.pk,
            )
        # Switched off, or its product is off the menu (a sold-out product is out_of_stock, with what is left).
        if not option.active or (option.product is not None and not option.product.active):
            raise InvalidOptions(
                gettext("'%(option)s' (%(group)s) of '%(product)s' is not available right now.") % where,
                product=product,
                group=group,
                option_id=option.pk,
            )
        if request.options and option.product is None:
            raise InvalidOptions(
                gettext("'%(option)s' (%(group)s) of '%(product)s' takes no options of its own.") % where,
                product=product,
                group=group,
                option_id=option.pk,
            )
        parts = (
            _check_choices(option.product, request.options, options=options, groups=groups) if option.product else []
        )
        chosen.append(_Choice(option=option, quantity=request.quantity, options=parts))
    for group in groups.get(product.pk, ()):
        count = sum(c.quantity for c in chosen if c.option.group_id == group.pk)
        if group.min_choices <= count <= group.max_choices:
            continue
        facts = {"group": group.name, "product": product.name, "chosen": count}
        if group.min_choices == group.max_choices:
            rule = gettext("Choose exactly %(count)d of '%(group)s' for '%(product)s' (%(chosen)d chosen).")
        elif count < group.min_choices:
            rule = gettext("Choose at least %(count)d of '%(group)s' for '%(product)s' (%(chosen)d chosen).")
        else:
            rule = gettext("Choose at most %(count)d of '%(group)s' for '%(product)s' (%(chosen)d chosen).")
        limit = group.max_choices if count > group.max_choices else group.min_choices
        raise InvalidOptions(rule % {**facts, "count": limit}, product=product, group=group.name)
    return chosen


def _extra_price(choices: list[_Choice]) -> Decimal:
    """What the choices add to one unit: each option's price, and a combo part's own options, per unit."""
    return sum((c.quantity * (c.option.price + _extra_price(c.options)) for c in choices), Decimal("0.00"))


def _parts(choices: list[_Choice], units: int):
    """(product id, units) of the combo parts among the choices, for `units` units of what holds them."""
    for choice in choices:
        if choice.option.product_id is not None:
            yield choice.option.product_id, units * choice.quantity
        yield from _parts(choice.options, units * choice.quantity)


def _save_choices(order: Order, lines: list[tuple[OrderItem, list[_Choice]]]) -> None:
    """Writes each line's choices as at order time: options and combo parts, then the parts' own options
    under them. One insert per level; MySQL's bulk insert returns no ids, so they are read back in order.
    Leaves each line's rows in its prefetch cache (`item.options.all()` reads no more)."""
    if any(item.pk is None for item, _ in lines):
        for (item, _), pk in zip(lines, order.items.order_by("pk").values_list("pk", flat=True), strict=True):
            item.pk = pk
    by_item: dict[int, list[OrderItemOption]] = defaultdict(list)
    _insert_choices(order, lines, by_item)
    for item, _ in lines:
        remember_related(item, "options", by_item[id(item)])


def remember_related(instance, relation: str, objects: list) -> None:
    """Makes `instance.<relation>.all()` answer `objects` (rows just written) without a query, as
    prefetch_related would have left it."""
    queryset = getattr(instance, relation).get_queryset()
    queryset._result_cache, queryset._prefetch_done = list(objects), True
    instance.__dict__.setdefault("_prefetched_objects_cache", {})[relation] = queryset


def _insert_choices(order: Order, lines, by_item: dict[int, list[OrderItemOption]]) -> None:
    """One bulk insert per level of choices; each row also goes to its line's list in `by_item`."""
    known: set[int] = set()
    level = [(item, None, chosen) for item, chosen in lines]
    while level:
        rows, below = [], []
        for item, parent, chosen in level:
            for choice in chosen:
                option = choice.option
                row = OrderItemOption(
                    item=item,
                    parent=parent,
                    option=option,
                    group_name=option.group.name,
                    name=option.name,
                    product=option.product,
                    price=option.price,
                    quantity=choice.quantity,
                )
                rows.append(row)
                by_item[id(item)].append(row)
                below.append((item, row, choice.options))
        if not rows:
            return
        OrderItemOption.objects.bulk_create(rows)
        if any(row.pk is None for row in rows):
            saved = OrderItemOption.objects.filter(item__order=order).order_by("pk").values_list("pk", flat=True)
            for row, pk in zip(rows, [pk for pk in saved if pk not in known], strict=True):
                row.pk = pk
        known.update(row.pk for row in rows)
        level = [entry for entry in below if entry[2]]


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
            gettext("Say whether the order is eaten here or taken away."),
            errors={
                "dining": [
                    gettext("Required at %(store)s: one of %(choices)s.")
                    % {"store": store.name, "choices": ", ".join(offered)}
                ]
            },
        )
    if dining not in offered:
        raise DiningInvalid(
            gettext("%(store)s does not offer '%(dining)s'.") % {"store": store.name, "dining": dining},
            errors={"dining": [gettext("One of %(choices)s.") % {"choices": ", ".join(offered)}]},
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
        raise TerminalInactive(
            gettext("Terminal '%(terminal)s' is disabled; ask a manager to enable it.") % {"terminal": terminal.name}
        )
    store = terminal.store
    dining = _dining_for(store, dining)
    if not items:
        raise Invalid(
            gettext("An order needs at least one item."), errors={"items": [gettext("This list may not be empty.")]}
        )

    wanted = _merge_quantities(items)
    products = Product.objects.in_bulk(list(wanted))
    for product_id in wanted:
        product = products.get(product_id)
        if product is None:
            raise UnknownProduct(
                gettext("Product %(product)s does not exist.") % {"product": product_id}, product_id=product_id
            )
        if not product.active:
            raise ProductUnavailable(product_id=product_id, product_name=product.name)

    options, groups = _load_choices(items, products)
    choices = [
        _check_choices(products[item.product_id], item.options, options=options, groups=groups) for item in items
    ]
    # A combo reserves its parts as if they were ordered alone, in the same pass as the plain lines.
    for item, chosen in zip(items, choices, strict=True):
        for product_id, units in _parts(chosen, item.quantity):
            wanted[product_id] = wanted.get(product_id, 0) + units
    for option in options.values():
        if option.product is not None:
            products.setdefault(option.product_id, option.product)
    for product_id, quantity in wanted.items():
        product = products[product_id]
        if product.stock is not None and product.stock < quantity:
            raise OutOfStock(product_id=product_id, product_name=product.name, available=product.stock)

    customer = customer_identify(cpf=customer_cpf)[0] if customer_cpf else None
    _reserve_stock(products, wanted)

    lines = []
    for item, chosen in zip(items, choices, strict=True):
        product = products[item.product_id]
        unit_price = (product.price + _extra_price(chosen)).quantize(CENT)
        line = OrderItem(
            product=product,
            product_name=product.name,
            unit_price=unit_price,
            quantity=item.quantity,
            note=item.note.strip(),
            line_total=(unit_price * item.quantity).quantize(CENT),
        )
        lines.append((line, chosen))
    total = sum((line.line_total for line, _ in lines), Decimal("0.00"))
    if total > MAX_MONEY:
        raise OrderTooLarge(
            gettext("An order may total at most %(most)s; this one totals %(total)s.")
            % {"most": number_format(MAX_MONEY, 2), "total": number_format(total, 2)}
        )

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
        event_sequence=1,  # order.placed, emitted below
    )
    for line, _ in lines:
        line.order = order
    OrderItem.objects.bulk_create([line for line, _ in lines])
    _save_choices(order, lines)
    # The order as it was just written, lines and choices included: the event and the answer read no more.
    remember_related(order, "items", [line for line, _ in lines])
    emit(
        "order.placed",
        order=order,
        data={**order_data(order), "items": order_items(order), "customer_identified": customer is not None},
        first=True,
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
        _release_stock(order)
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
            gettext("The kitchen can set: %(statuses)s.") % {"statuses": ", ".join(KITCHEN_STATUSES)},
            errors={"status": [gettext("'%(status)s' is not one.") % {"status": status}]},
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
