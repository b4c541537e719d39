"""Shared fixtures: the three roles, a kiosk terminal, a small menu and authenticated API clients."""

import itertools
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from rest_framework.test import APIClient

from orders.models import Category, Product, Terminal

_keys = itertools.count(1)

requires_mysql = pytest.mark.skipif(
    connection.vendor != "mysql",
    reason="needs real row locks: run with DATABASE_URL=mysql://... (MariaDB/MySQL); SQLite serialises writers",
)


def make_user(username: str, group: str | None = None, **extra) -> User:
    user = User.objects.create_user(username=username, password=username, **extra)
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])  # transactional tests flush the seeded groups
    return user


@pytest.fixture
def kiosk_user(db):
    return make_user("kiosk-a", "kiosk")


@pytest.fixture
def terminal(kiosk_user):
    return Terminal.objects.create(name="Totem A", store="Loja 1", external_pos_id="POSA", user=kiosk_user)


@pytest.fixture
def other_terminal(db):
    user = make_user("kiosk-b", "kiosk")
    return Terminal.objects.create(name="Totem B", store="Loja 1", external_pos_id="POSB", user=user)


@pytest.fixture
def kitchen_user(db):
    return make_user("cook", "kitchen")


@pytest.fixture
def manager_user(db):
    return make_user("boss", "manager", is_staff=True)


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def kiosk(terminal):
    return client_for(terminal.user)


@pytest.fixture
def kitchen(kitchen_user):
    return client_for(kitchen_user)


@pytest.fixture
def manager(manager_user):
    return client_for(manager_user)


@pytest.fixture
def menu(db):
    """burger (unlimited), juice (3 in stock), pie (inactive)."""
    lanche = Category.objects.create(name="Lanche", slug="lanche", position=1)
    bebida = Category.objects.create(name="Bebida", slug="bebida", position=2)
    return {
        "lanche": lanche,
        "bebida": bebida,
        "burger": Product.objects.create(category=lanche, name="X-Burger", price=Decimal("25.90")),
        "juice": Product.objects.create(category=bebida, name="Suco", price=Decimal("9.90"), stock=3),
        "pie": Product.objects.create(category=lanche, name="Torta", price=Decimal("8.90"), active=False),
    }


def new_key() -> str:
    return f"test-key-{next(_keys)}"


def place(client, items, *, key=None, **extra):
    """POST /api/v1/orders/ as a kiosk would."""
    body = {"items": items, **extra}
    return client.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY=key or new_key())
