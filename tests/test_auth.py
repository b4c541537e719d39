"""Logins over the API: a refresh token works once, logout revokes it, and a password change or a
deactivated account leaves the user's tokens worthless."""

import pytest
from rest_framework.test import APIClient

from tests.conftest import make_user

pytestmark = pytest.mark.django_db
TOKEN, REFRESH, LOGOUT = "/api/v1/auth/token/", "/api/v1/auth/token/refresh/", "/api/v1/auth/logout/"


@pytest.fixture
def cashier():
    return make_user("caixa1", "kitchen")


def login(username="caixa1", password="caixa1") -> dict:
    response = APIClient().post(TOKEN, {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def refresh(token: str):
    return APIClient().post(REFRESH, {"refresh": token}, format="json")


def can_read_orders(access: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/v1/orders/").status_code


def test_a_refresh_token_works_once(cashier):
    first = login()
    rotated = refresh(first["refresh"])
    assert rotated.status_code == 200 and rotated.json()["refresh"] != first["refresh"]
    again = refresh(first["refresh"])  # a stolen copy used after the real client refreshed
    assert again.status_code == 401 and again["Content-Type"] == "application/problem+json"
    assert refresh(rotated.json()["refresh"]).status_code == 200


def test_logout_revokes_the_refresh_token(cashier):
    tokens = login()
    assert APIClient().post(LOGOUT, {"refresh": tokens["refresh"]}, format="json").status_code == 200
    assert refresh(tokens["refresh"]).status_code == 401
    assert APIClient().post(LOGOUT, {"refresh": "not-a-token"}, format="json").status_code == 401


def test_a_password_change_revokes_every_token_of_the_user(cashier):
    tokens = login()
    assert can_read_orders(tokens["access"]) == 200
    cashier.set_password("a-new-password-2026")
    cashier.save()
    assert can_read_orders(tokens["access"]) == 401
    assert refresh(tokens["refresh"]).status_code == 401
    assert can_read_orders(login("caixa1", "a-new-password-2026")["access"]) == 200


def test_a_deactivated_or_deleted_account_keeps_no_access(cashier):
    tokens = login()
    cashier.is_active = False
    cashier.save()
    assert can_read_orders(tokens["access"]) == 401
    assert refresh(tokens["refresh"]).status_code == 401
    cashier.delete()
    assert refresh(tokens["refresh"]).status_code == 401  # not a 500


def test_expired_refresh_tokens_are_flushed_on_schedule(cashier):
    import datetime

    from django.utils import timezone
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    from kiosk.tasks import expired_tokens_flush

    login()
    login()
    assert OutstandingToken.objects.count() == 2
    assert expired_tokens_flush() == 0
    assert expired_tokens_flush(now=timezone.now() + datetime.timedelta(days=8)) >= 2
    assert not OutstandingToken.objects.exists()
