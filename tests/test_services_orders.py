"""The order services: prices, stock, pickup numbers and the status machine."""

import datetime
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from kiosk.problems import InvalidTransition, OutOfStock, ProductUnavailable
from orders import services
from orders.models import Customer, Order, Product
from orders.services import ItemRequest, UnknownProduct, order_advance, order_cancel, order_mark_paid, order_place

pytestmark = pytest.mark.django_db
S = Order.Status


def test_total_is_computed_from_current_prices_and_items_snapshot_them(terminal, menu):
    order = order_place(
        terminal=terminal,
        items=[ItemRequest(menu["burger"].pk, 2, "sem cebola"), ItemRequest(menu["juice"].pk, 1)],
    )
    assert order.total == Decimal("61.70")
    assert order.status == S.AWAITING_PAYMENT
    first, second = order.items.order_by("id")
    assert (first.product_name, first.unit_price, first.quantity, first.note, first.line_total) == (
        "X-Burger",
        Decimal("25.90"),
        2,
        "sem cebola",
        Decimal("51.80"),
    )
    assert second.line_total == Decimal("9.90")

    menu["burger"].price = Decimal("30.00")
    menu["burger"].name = "X-Burger Novo"
    menu["burger"].save()
    first.refresh_from_db()
    assert (first.product_name, first.unit_price) == ("X-Burger", Decimal("25.90"))


def test_cents_stay_exact(terminal, menu):
    menu["burger"].price = Decimal("0.10")
    menu["burger"].save()
    order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 3)])
    assert order.total == Decimal("0.30")


def test_limited_stock_is_reserved_and_out_of_stock_names_the_product(terminal, menu):
    juice = menu["juice"]
    order_place(terminal=terminal, items=[ItemRequest(juice.pk, 2)])
    juice.refresh_from_db()
    assert juice.stock == 1

    with pytest.raises(OutOfStock) as exc:
        order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1), ItemRequest(juice.pk, 2)])
    assert exc.value.extra["product_name"] == "Suco"
    assert exc.value.extra["available"] == 1
    juice.refresh_from_db()
    assert juice.stock == 1
    assert Order.objects.count() == 1


def test_same_product_on_two_lines_counts_against_stock_together(terminal, menu):
    with pytest.raises(OutOfStock):
        order_place(
            terminal=terminal, items=[ItemRequest(menu["juice"].pk, 2, "gelado"), ItemRequest(menu["juice"].pk, 2)]
        )
    assert Product.objects.get(pk=menu["juice"].pk).stock == 3


def test_inactive_and_unknown_products_cannot_be_ordered(terminal, menu):
    with pytest.raises(ProductUnavailable):
        order_place(terminal=terminal, items=[ItemRequest(menu["pie"].pk, 1)])
    with pytest.raises(UnknownProduct):
        order_place(terminal=terminal, items=[ItemRequest(999_999, 1)])
    assert not Order.objects.exists()


def test_cancel_releases_stock_once_even_when_repeated(terminal, menu):
    order = order_place(terminal=terminal, items=[ItemRequest(menu["juice"].pk, 3)])
    assert Product.objects.get(pk=menu["juice"].pk).stock == 0

    cancelled = order_cancel(order_id=order.pk)
    assert cancelled.status == S.CANCELLED
    assert cancelled.cancelled_at is not None
    assert cancelled.cancel_reason == Order.CancelReason.CUSTOMER
    order_cancel(order_id=order.pk)
    assert Product.objects.get(pk=menu["juice"].pk).stock == 3


def test_paid_order_keeps_its_stock_and_cannot_be_cancelled(terminal, menu):
    order = order_place(terminal=terminal, items=[ItemRequest(menu["juice"].pk, 2)])
    order_mark_paid(order_id=order.pk)
    with pytest.raises(InvalidTransition):
        order_cancel(order_id=order.pk)
    assert Order.objects.get(pk=order.pk).status == S.RECEIVED
    assert Product.objects.get(pk=menu["juice"].pk).stock == 1


def test_full_happy_path_records_the_time_of_every_change(terminal, menu):
    order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)])
    order_mark_paid(order_id=order.pk)
    for status in (S.IN_PREPARATION, S.READY, S.COMPLETED):
        order_advance(order_id=order.pk, status=status)
    order.refresh_from_db()
    assert order.status == S.COMPLETED
    stamps = [order.created_at, order.received_at, order.in_preparation_at, order.ready_at, order.completed_at]
    assert all(stamps) and stamps == sorted(stamps)


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], S.IN_PREPARATION),  # unpaid order cannot go to the kitchen
        ([], S.COMPLETED),
        ([S.RECEIVED], S.READY),  # no skipping
        ([S.RECEIVED], S.CANCELLED),  # paid: refund, not cancel
        ([S.RECEIVED, S.IN_PREPARATION, S.READY, S.COMPLETED], S.IN_PREPARATION),
        ([S.CANCELLED], S.RECEIVED),
    ],
)
def test_invalid_transitions_are_refused_and_change_nothing(terminal, menu, path, target):
    order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)])
    for step in path:
        with transaction.atomic():
            services._transition(order_id=order.pk, target=step)
    before = Order.objects.get(pk=order.pk)
    with pytest.raises(InvalidTransition), transaction.atomic():
        services._transition(order_id=order.pk, target=target)
    after = Order.objects.get(pk=order.pk)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)


def test_pickup_numbers_count_up_and_restart_the_next_day(terminal, menu, monkeypatch):
    numbers = [order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)]).number for _ in range(3)]
    assert numbers == [1, 2, 3]

    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    monkeypatch.setattr(services.timezone, "localdate", lambda timezone=None: tomorrow)
    order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)])
    assert (order.business_date, order.number) == (tomorrow, 1)


def test_customer_identify_normalises_and_never_overwrites_known_details():
    customer, created = services.customer_identify(cpf="529.982.247-25", name="Maria", email="maria@example.com")
    assert created and customer.cpf == "52998224725"
    again, created = services.customer_identify(cpf="52998224725", name="Impostor", email="x@example.com")
    assert not created and again.pk == customer.pk
    assert (again.name, again.email) == ("Maria", "maria@example.com")
    assert Customer.objects.count() == 1


def test_order_with_cpf_links_the_customer(terminal, menu):
    order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)], customer_cpf="529.982.247-25")
    assert order.customer.cpf == "52998224725"
