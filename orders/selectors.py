"""Reads: the menu a kiosk shows, the orders a caller may see, the kitchen queue and the pickup board."""

from django.conf import settings
from django.db.models import Case, IntegerField, Prefetch, Q, QuerySet, Value, When
from django.shortcuts import get_object_or_404
from django.utils import timezone

from kiosk.roles import MANAGER, has_role, is_staff_role
from orders.models import Category, Order, OrderItem, Product

Status = Order.Status
KITCHEN_QUEUE_STATUSES = (Status.READY, Status.IN_PREPARATION, Status.RECEIVED)


def categories_list() -> QuerySet[Category]:
    return Category.objects.all()


def products_for(*, user, category_slug: str | None = None) -> QuerySet[Product]:
    """Managers see the whole catalogue; everyone else only what can be ordered right now."""
    products = Product.objects.select_related("category")
    if not has_role(user, MANAGER):
        products = products.filter(Q(stock__isnull=True) | Q(stock__gt=0), active=True)
    if category_slug:
        products = products.filter(category__slug=category_slug)
    return products.order_by("category__position", "category__name", "name", "id")


def _with_details(orders: QuerySet[Order]) -> QuerySet[Order]:
    return orders.select_related("customer", "store", "terminal__store").prefetch_related(
        Prefetch("items", queryset=OrderItem.objects.order_by("id"))
    )


def orders_visible_to(*, user) -> QuerySet[Order]:
    """Staff see every order; a kiosk only the orders placed on its own terminal."""
    orders = _with_details(Order.objects.all())
    if is_staff_role(user):
        return orders
    return orders.filter(terminal__user=user)


def order_for_user(*, user, order_id) -> Order:
    """The order if the caller may see it; another terminal's order is simply not found (404)."""
    return get_object_or_404(orders_visible_to(user=user), pk=order_id)


def order_detail(order_id) -> Order:
    return _with_details(Order.objects.all()).get(pk=order_id)


def kitchen_queue() -> QuerySet[Order]:
    """Paid, unfinished orders: ready first (to hand over), then in preparation, then received; oldest first."""
    rank = Case(
        *(When(status=status, then=Value(i)) for i, status in enumerate(KITCHEN_QUEUE_STATUSES)),
        output_field=IntegerField(),
    )
    return (
        _with_details(Order.objects.filter(status__in=KITCHEN_QUEUE_STATUSES))
        .annotate(queue_rank=rank)
        .order_by("queue_rank", "created_at", "number")
    )


def pickup_board() -> dict[str, list[int]]:
    """Pickup numbers for the screen in the dining room: no names, no CPFs, no amounts.

    Only orders of the last PICKUP_BOARD_HOURS: numbers restart daily, so a forgotten order from yesterday
    must not show beside today's order with the same number.
    """
    since = timezone.now() - settings.PICKUP_BOARD_WINDOW
    rows = (
        Order.objects.filter(status__in=(Status.IN_PREPARATION, Status.READY), created_at__gte=since)
        .order_by("created_at", "number")
        .values_list("status", "number")
    )
    board: dict[str, list[int]] = {Status.IN_PREPARATION: [], Status.READY: []}
    for status, number in rows:
        board[status].append(number)
    return {"in_preparation": board[Status.IN_PREPARATION], "ready": board[Status.READY]}
