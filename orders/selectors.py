"""Reads: the menu a kiosk shows, the orders a caller may see (by role and store), the kitchen queue and the
pickup board (per store)."""

import datetime
from collections import defaultdict

from django.conf import settings
from django.db import connection
from django.db.models import Case, Count, IntegerField, Max, Prefetch, Q, QuerySet, Value, When
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext

from kiosk.problems import DomainError, Invalid
from kiosk.roles import KIOSK, MANAGER, has_role, is_staff_role, works_in_one_store
from orders.models import Category, Option, OptionGroup, Order, OrderItem, Product, StaffMember, Store, Terminal
from orders.services import store_business_date

Status = Order.Status
KITCHEN_QUEUE_STATUSES = (Status.READY, Status.IN_PREPARATION, Status.RECEIVED)


def categories_list() -> QuerySet[Category]:
    return Category.objects.all()


def products_for(*, user, category_slug: str | None = None) -> QuerySet[Product]:
    """Managers see the whole catalogue; everyone else only what can be ordered right now. Each product comes
    with its option groups and their options (a combo's slot choices with their products), and the ids of
    the products it suggests that the caller may see: four queries however big the menu."""
    visible = Product.objects.all()
    if not has_role(user, MANAGER):
        visible = visible.filter(Q(stock__isnull=True) | Q(stock__gt=0), active=True)
    products = visible.select_related("category").prefetch_related(
        Prefetch(
            "option_groups",
            queryset=OptionGroup.objects.order_by("position", "id").prefetch_related(
                Prefetch("options", queryset=Option.objects.select_related("product").order_by("position", "id"))
            ),
        ),
        Prefetch("suggestions", queryset=visible.order_by("id").only("id")),
    )
    if category_slug:
        products = products.filter(category__slug=category_slug)
    return products.order_by("category__position", "category__name", "name", "id")


def menu_stamp() -> str:
    """What the menu shows, in one cheap query: the latest change and the row count of categories, products,
    option groups, options and suggestions. Every write to them moves it: saves (the admin, the API, the sold-out
    switch) through `updated_at`, stock taken or put back by orders (their UPDATEs set `updated_at` too), and
    deletions through the counts. Rendered menus are cached under it (views.ProductListView)."""
    tables = [connection.ops.quote_name(m._meta.db_table) for m in (Category, Product, OptionGroup, Option)]
    suggestions = connection.ops.quote_name(Product.suggestions.through._meta.db_table)
    # Table names from our models, no input: nothing to inject.
    columns = [f"(SELECT MAX(updated_at) FROM {t}), (SELECT COUNT(*) FROM {t})" for t in tables]  # noqa: S608
    columns.append(f"(SELECT COUNT(*) FROM {suggestions}), (SELECT SUM(id) FROM {suggestions})")  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(columns)}")
        row = cursor.fetchone()
    return "|".join(str(value) for value in row)


def _with_details(orders: QuerySet[Order]) -> QuerySet[Order]:
    return orders.select_related("customer", "store", "terminal__store").prefetch_related(
        Prefetch("items", queryset=OrderItem.objects.order_by("id").prefetch_related("options"))
    )


class StoreNotAssigned(DomainError):
    status = 403
    code = "store_not_assigned"


class StoreRequired(DomainError):
    status = 400
    code = "store_required"


def staff_store(user) -> Store | None:
    """The store a kitchen or cashier login works in (its StaffMember), or None; read once per request."""
    if not getattr(user, "pk", None):
        return None
    if not hasattr(user, "_kiosk_store"):
        member = StaffMember.objects.select_related("store").filter(user_id=user.pk).first()
        user._kiosk_store = member.store if member else None
    return user._kiosk_store


def store_of_staff(user) -> Store:
    """The store of a kitchen or cashier login; StoreNotAssigned (403) when it has none: such a login sees
    nothing rather than every store's orders."""
    store = staff_store(user)
    if store is None:
        raise StoreNotAssigned(
            gettext(
                "The login '%(login)s' works in no store yet: a manager sets its store in the back office "
                "(Staff members)."
            )
            % {"login": user.get_username()}
        )
    return store


def store_of_user(*, user, store: Store | None = None) -> Store | None:
    """The store a login's screens are about: a kitchen or cashier login's own (None while it has none), a
    kiosk's terminal's, a manager's `store` when one is named (else None: a manager sees every store)."""
    if has_role(user, MANAGER):
        return store
    if works_in_one_store(user):
        return staff_store(user)
    terminal = terminal_of_user(user)
    return terminal.store if terminal else None


def terminal_of_user(user) -> Terminal | None:
    """A kiosk login's terminal, its store joined; None for a kiosk with none yet and for any other login (a
    kitchen, cashier or manager login's screens are about a store, even should it also be a kiosk)."""
    if not has_role(user, KIOSK) or is_staff_role(user):
        return None
    return Terminal.objects.select_related("store").filter(user_id=user.pk).first()


def store_by_slug(slug: str, *, field: str = "store") -> Store:
    """The store a `?store=<slug>` filter names; an unknown slug is a 400 validation_error."""
    store = Store.objects.filter(slug=slug).first()
    if store is None:
        shown = slug[:80]
        raise Invalid(
            gettext("Unknown store '%(store)s'.") % {"store": shown},
            errors={field: [gettext("No store has the slug '%(store)s'.") % {"store": shown}]},
        )
    return store


def orders_visible_to(*, user, store: Store | None = None) -> QuerySet[Order]:
    """Managers see every store's orders (`store` narrows them to one); kitchen staff and cashiers only their
    own store's (StoreNotAssigned without one; another `store` than theirs finds nothing); a kiosk only the
    orders placed on its own terminal."""
    return _with_details(_visible(Order.objects.all(), user=user, store=store))


def _visible(orders: QuerySet[Order], *, user, store: Store | None = None) -> QuerySet[Order]:
    if has_role(user, MANAGER):
        pass
    elif works_in_one_store(user):
        orders = orders.filter(store=store_of_staff(user))
    else:
        orders = orders.filter(terminal__user=user)
    return orders if store is None else orders.filter(store=store)


def order_status_for_user(*, user, order_id) -> Order:
    """Only the id, number and status of an order the caller may see (what a polling kiosk needs), in one
    query; 404 like `order_for_user`."""
    return get_object_or_404(_visible(Order.objects.only("id", "number", "status"), user=user), pk=order_id)


def orders_numbered(orders: QuerySet[Order], *, number: int, business_date=None) -> QuerySet[Order]:
    """The orders with this pickup number on `business_date`, or, without one, today in each store's own
    time zone (numbers restart at each store's midnight)."""
    if business_date is not None:
        return orders.filter(number=number, business_date=business_date)
    today = Q(pk__in=[])
    for store in Store.objects.only("pk", "time_zone"):
        today |= Q(store=store, business_date=store_business_date(store))
    return orders.filter(today, number=number)


def order_for_user(*, user, order_id) -> Order:
    """The order if the caller may see it; another terminal's order is simply not found (404)."""
    return get_object_or_404(orders_visible_to(user=user), pk=order_id)


def order_detail(order_id) -> Order:
    return _with_details(Order.objects.all()).get(pk=order_id)


def _kitchen_orders(*, user, store: Store | None) -> QuerySet[Order]:
    return _visible(Order.objects.all(), user=user, store=store).filter(status__in=KITCHEN_QUEUE_STATUSES)


def kitchen_queue(*, user, store: Store | None = None, limit: int | None = None) -> QuerySet[Order]:
    """Paid, unfinished orders the caller may see (a kitchen login: its store's; a manager: every store's, or
    `store`'s): ready first (to hand over), then in preparation, then received; oldest first. At most `limit`.
    Only what a kitchen card shows: lines, choices, dining, the store; no customer, no terminal, no money."""
    rank = Case(
        *(When(status=status, then=Value(i)) for i, status in enumerate(KITCHEN_QUEUE_STATUSES)),
        output_field=IntegerField(),
    )
    queue = (
        _kitchen_orders(user=user, store=store)
        .select_related("store")
        .only(
            "id",
            "number",
            "status",
            "dining",
            "created_at",
            "received_at",
            "in_preparation_at",
            "ready_at",
            "store__slug",
            "store__name",
            "store__time_zone",
        )
        .prefetch_related(
            Prefetch(
                "items",
                queryset=OrderItem.objects.order_by("id")
                .only("id", "order_id", "product_id", "product_name", "quantity", "note")
                .prefetch_related("options"),
            )
        )
        .annotate(queue_rank=rank)
        .order_by("queue_rank", "created_at", "number")
    )
    return queue if limit is None else queue[:limit]


def kitchen_queue_stamp(*, user, store: Store | None = None) -> tuple[int, str]:
    """(how many orders the caller's queue holds, a stamp that moves whenever the queue does), in one query on
    the (store, status) index: an order entering, leaving or changing status moves the count or the latest
    `updated_at`. Displays that poll are answered from the rendering cached under it."""
    row = _kitchen_orders(user=user, store=store).aggregate(n=Count("id"), last=Max("updated_at"))
    return row["n"], f"{row['n']}|{row['last']}"


def store_for_board(slug: str | None) -> Store | None:
    """The store a pickup board shows: `?store=<slug>` (an unknown or inactive one is a 404); without it, the
    only active store. Several active stores and no slug: StoreRequired (400), listing their slugs. None when
    there is no active store at all (an empty board)."""
    active = Store.objects.filter(active=True)
    if slug:
        store = active.filter(slug=slug).first()
        if store is None:
            raise Http404(f"No store '{slug[:80]}'.")
        return store
    stores = list(active.order_by("slug")[:2])
    if len(stores) > 1:
        slugs = list(active.order_by("slug").values_list("slug", flat=True))
        raise StoreRequired(
            gettext("Several stores: say which one with ?store=<slug> (%(stores)s).") % {"stores": ", ".join(slugs)},
            stores=slugs,
        )
    return stores[0] if stores else None


def pickup_board(store: Store | None) -> dict[str, list[int]]:
    """Pickup numbers of one store for the screen in its dining room: no names, no CPFs, no amounts.

    Only orders of the last PICKUP_BOARD_HOURS: numbers restart daily, so a forgotten order from yesterday
    must not show beside today's order with the same number. Another store's numbers never show: each store
    has its own sequence.
    """
    since = timezone.now() - settings.PICKUP_BOARD_WINDOW
    rows = (
        Order.objects.filter(store=store, status__in=(Status.IN_PREPARATION, Status.READY), created_at__gte=since)
        .order_by("created_at", "number")
        .values_list("status", "number")
    )
    board: dict[str, list[int]] = {Status.IN_PREPARATION: [], Status.READY: []}
    for status, number in rows:
        board[status].append(number)
    return {"in_preparation": board[Status.IN_PREPARATION], "ready": board[Status.READY]}


def item_options(item: OrderItem) -> list[dict]:
    """What was chosen on an order line, as at order time: its options and combo parts, each part with its own
    options. {"option_id", "group", "name", "price" (of one), "quantity", "product_id" (a combo part, else
    None), "options" (a part's own: the same without "options")}. Reads `item.options.all()`: prefetch it."""
    rows = list(item.options.all())
    below = defaultdict(list)
    for row in rows:
        if row.parent_id is not None:
            below[row.parent_id].append(row)

    def shape(row) -> dict:
        return {
            "option_id": row.option_id,
            "group": row.group_name,
            "name": row.name,
            "price": row.price,
            "quantity": row.quantity,
            "product_id": row.product_id,
        }

    return [{**shape(row), "options": [shape(part) for part in below[row.pk]]} for row in rows if row.parent_id is None]


def menu_last_modified(products) -> datetime.datetime | None:
    """The latest change among these products, their option groups and options, and the products those
    options stand for (a part selling out): the menu's Last-Modified. Reads only what `products_for` fetched."""
    stamps = []
    for product in products:
        stamps.append(product.updated_at)
        for group in product.option_groups.all():
            stamps.append(group.updated_at)
            for option in group.options.all():
                stamps.append(option.updated_at)
                if option.product is not None:
                    stamps.append(option.product.updated_at)
    return max(stamps, default=None)
