"""Logins over the API: a refresh token works once, logout revokes it, and a password change or a
deactivated account leaves the user's tokens worthless."""

import pytest
from rest_framework.test import APIClient

from tests.conftest import make_user, staff_of, store_named

pytestmark = pytest.mark.django_db
TOKEN, REFRESH, LOGOUT = "/api/v1/auth/token/", "/api/v1/auth/token/refresh/", "/api/v1/auth/logout/"


@pytest.fixture
def cashier():
    return staff_of(make_user("caixa1", "cashier"), store_named("Loja 1"))


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


# --- Brute force ---------------------------------------------------------------------------------------------


def attempt(username, password, address="203.0.113.10", **headers):
    return APIClient(REMOTE_ADDR=address).post(
        TOKEN, {"username": username, "password": password}, format="json", **headers
    )


def test_failed_logins_lock_the_user_name_and_the_address_for_a_while(cashier, settings):
    other = make_user("caixa2", "kitchen")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt("caixa1", "guess").status_code == 401
    assert attempt("caixa1", "guess").status_code == 429  # the limit-th failure locks
    locked = attempt("caixa1", "caixa1")  # the right password, too late
    assert locked.status_code == 429 and locked["Content-Type"] == "application/problem+json"
    assert locked.json()["code"] == "too_many_failed_logins" and int(locked["Retry-After"]) == 15 * 60
    assert attempt("caixa1", "caixa1", address="198.51.100.7").status_code == 429  # the user, from anywhere
    assert attempt(other.username, "caixa2").status_code == 429  # anyone, from that address
    assert attempt(other.username, "caixa2", address="198.51.100.7").status_code == 200


def test_a_few_typos_do_not_lock_anyone_out(cashier, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt("caixa1", "guess").status_code == 401
    assert attempt("caixa1", "caixa1").status_code == 200


def test_behind_the_proxy_each_customer_address_counts_not_the_proxys(cashier, settings):
    settings.BEHIND_TLS_PROXY = True
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt(f"nobody{i}", "guess", address="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.66")
    # Another customer through the same load balancer is not locked out with the guesser.
    assert attempt("caixa1", "caixa1", address="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.9").status_code == 200
    guesser = attempt("caixa1", "caixa1", address="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert guesser.status_code == 429


def test_the_admin_login_is_locked_out_too(settings):
    from django.test import Client

    make_user("gerente9", "manager", is_staff=True)
    browser = Client(REMOTE_ADDR="203.0.113.20")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        page = browser.post("/admin/login/", {"username": "gerente9", "password": "guess"})
        assert page.status_code == 200  # the form again, with its error
    assert browser.post("/admin/login/", {"username": "gerente9", "password": "guess"}).status_code == 429
    locked = browser.post("/admin/login/", {"username": "gerente9", "password": "gerente9"})
    assert locked.status_code == 429 and locked["Retry-After"] == str(15 * 60)
    assert locked["Content-Type"].startswith("text/html")  # a page for the person at the browser
    assert "15" in locked.content.decode() and 'class="errornote"' in locked.content.decode()
