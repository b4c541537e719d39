"""The permission matrix: every endpoint and every back-office page and action, for each role, with the status it
must answer; store boundaries (a terminal sees only its terminal's orders, kitchen and cashier logins only their
store's); the customer's CPF and e-mail in no answer, page or export, except a customer's own page in the back
office for managers.

The tables below are the one place that says who gets what. `test_every_route_and_admin_action_has_a_row`
walks the URL resolver and the admin site: a new endpoint, method, admin page or admin action without a row
fails it ("add it to the matrix").

Roles (columns, in this order): anonymous; a kiosk (the login of terminal A1 of store A); a kitchen and a
cashier login of store A (staff, as `seed_demo` makes them); a manager (every store); a superuser. API calls
carry a real JWT (Authorization: Bearer), back-office pages a session. Each request is sent once per role;
mismatches are collected and reported together.
"""

import dataclasses
import json
import re
from decimal import Decimal

import pytest
from axes.models import AccessFailureLog
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from kiosk.audit import audit
from kiosk.events.models import WebhookEndpoint
from kiosk.models import AuditRecord, WorkerHeartbeat
from orders.models import Category, Option, OptionGroup, Order, Product, Terminal
from orders.services import ItemRequest, customer_identify, order_advance, order_place
from payments.models import Payment, Refund, WebhookDelivery
from payments.services.checkout import order_pay_at_counter
from payments.services.refunds import refund_request
from payments.simulator.models import SimChargeback, SimPayment
from tests.conftest import make_user, new_key, staff_of, store_named

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "kiosk", "kitchen", "cashier", "manager", "superuser")
CPF, CPF_SHOWN, EMAIL = "52998224725", "529.982.247-25", "maria.clara@example.com"
ADMIN = "/" + settings.ADMIN_URL


@dataclasses.dataclass(frozen=True)
class Row:
    """One request and the status each role gets. `path` and `body` name the world's objects as {order_a}."""

    method: str
    path: str
    expect: tuple[int, ...]
    body: dict | None = None
    note: str = ""


def row(method: str, path: str, *expect: int, body: dict | None = None, note: str = "") -> Row:
    assert len(expect) == len(ROLES), f"{method} {path}: one status per role"
    return Row(method, path, tuple(expect), body, note)


OID = "{order_a}"  # the kiosk's own order (store A, terminal A1), paid through Mercado Pago, in preparation

# fmt: off
# Every endpoint outside the back office. 401: no or a bad login; 403: a role the endpoint is not for; 404: an
# order of another terminal (kiosk) or another store (kitchen, cashier) is not found. Bodies that would change
# something are invalid (400) or the object's state refuses them (409): the role got past the permission check.
API = [
    #                                                               anon kiosk kitch cashr mangr super
    row("POST",   "/api/v1/auth/token/",                             401, 200,  200,  200,  200,  200,
        body={"username": "{username}", "password": "{password}"}, note="own credentials; anonymous: wrong ones"),
    row("POST",   "/api/v1/auth/token/refresh/",                     401, 200,  200,  200,  200,  200,
        body={"refresh": "{refresh}"}),
    row("POST",   "/api/v1/auth/logout/",                            401, 200,  200,  200,  200,  200,
        body={"refresh": "{logout_refresh}"}),
    # the menu
    row("GET",    "/api/v1/categories/",                             401, 200,  200,  200,  200,  200),
    row("GET",    "/api/v1/products/",                               401, 200,  200,  200,  200,  200),
    row("POST",   "/api/v1/products/",                               401, 403,  403,  403,  400,  400, body={}),
    row("GET",    "/api/v1/products/{burger}/",                      401, 200,  200,  200,  200,  200),
    row("PATCH",  "/api/v1/products/{burger}/",                      401, 403,  403,  403,  400,  400,
        body={"price": "-1.00"}),
    row("DELETE", "/api/v1/products/{old_product}/",                 401, 403,  403,  403,  204,  204),
    row("GET",    "/api/v1/options/{option}/",                       401, 403,  403,  403,  200,  200),
    row("PATCH",  "/api/v1/options/{option}/",                       401, 403,  403,  403,  400,  400,
        body={"price": "-1.00"}),
    # customers: looked up by CPF at the kiosk, always masked
    row("GET",    f"/api/v1/customers/?cpf={CPF}",                   401, 200,  403,  403,  200,  200),
    row("POST",   "/api/v1/customers/",                              401, 200,  403,  403,  200,  200,
        body={"cpf": CPF}, note="a known customer: 200, nothing overwritten"),
    row("GET",    "/api/v1/me/",                                     401, 200,  200,  200,  200,  200),
    # orders; which ones each role sees in the lists: VISIBLE_ORDERS
    row("GET",    "/api/v1/orders/",                                 401, 200,  200,  200,  200,  200),
    row("POST",   "/api/v1/orders/",                                 401, 400,  403,  403,  403,  403, body={}),
    row("GET",    "/api/v1/orders/{order_a}/",                       401, 200,  200,  200,  200,  200),
    row("GET",    "/api/v1/orders/{order_a2}/",                      401, 404,  200,  200,  200,  200,
        note="another terminal of the same store"),
    row("GET",    "/api/v1/orders/{order_b}/",                       401, 404,  404,  404,  200,  200),
    row("POST",   f"/api/v1/orders/{OID}/cancel/",                   401, 409,  409,  409,  409,  409,
        note="paid: refunded, not cancelled"),
    row("POST",   "/api/v1/orders/{order_a2}/cancel/",               401, 404,  409,  409,  409,  409),
    row("POST",   "/api/v1/orders/{order_b}/cancel/",                401, 404,  404,  404,  409,  409),
    row("GET",    "/api/v1/kitchen/orders/",                         401, 403,  200,  403,  200,  200),
    row("POST",   f"/api/v1/kitchen/orders/{OID}/status/",           401, 403,  400,  403,  400,  400, body={}),
    row("POST",   "/api/v1/kitchen/orders/{order_b}/status/",        401, 403,  404,  403,  400,  400, body={}),
    row("GET",    "/api/v1/pickup-board/?store=loja-a",              200, 200,  200,  200,  200,  200),
    # payments
    row("POST",   f"/api/v1/orders/{OID}/checkout/",                 401, 409,  403,  403,  409,  409,
        note="paid: order_not_payable"),
    row("POST",   "/api/v1/orders/{order_b}/checkout/",              401, 404,  403,  403,  409,  409),
    row("GET",    f"/api/v1/orders/{OID}/payment/",                  401, 200,  200,  200,  200,  200),
    row("GET",    "/api/v1/orders/{order_a2}/payment/",              401, 404,  200,  200,  200,  200),
    row("GET",    "/api/v1/orders/{order_b}/payment/",               401, 404,  404,  404,  200,  200),
    row("POST",   "/api/v1/orders/{unpaid_a}/counter-payment/",      401, 403,  403,  400,  400,  400, body={}),
    row("POST",   "/api/v1/orders/{unpaid_b}/counter-payment/",      401, 403,  403,  404,  400,  400, body={}),
    row("GET",    "/api/v1/payments/{payment_a}/refunds/",           401, 403,  403,  403,  200,  200),
    row("POST",   "/api/v1/payments/{payment_a}/refunds/",           401, 403,  403,  403,  400,  400, body={}),
    row("POST",   "/api/v1/webhooks/mercadopago/",                   401, 401,  401,  401,  401,  401,
        body={"type": "order", "data": {"id": "ORD1"}}, note="Mercado Pago's signature decides, not a login"),
    # outgoing webhooks
    row("GET",    "/api/v1/webhook-endpoints/",                      401, 403,  403,  403,  200,  200),
    row("POST",   "/api/v1/webhook-endpoints/",                      401, 403,  403,  403,  400,  400, body={}),
    row("GET",    "/api/v1/webhook-endpoints/{endpoint}/",           401, 403,  403,  403,  200,  200),
    row("PATCH",  "/api/v1/webhook-endpoints/{endpoint}/",           401, 403,  403,  403,  200,  200,
        body={"description": "fiscal printer"}),
    row("DELETE", "/api/v1/webhook-endpoints/{spare_endpoint}/",     401, 403,  403,  403,  204,  404,
        note="the manager deleted it"),
    row("POST",   "/api/v1/webhook-endpoints/{endpoint}/rotate-secret/", 401, 403, 403, 403,  200,  200),
    # the API's description, and any other /api/ path
    row("GET",    "/api/schema/",                                    200, 200,  200,  200,  200,  200),
    row("GET",    "/api/docs/",                                      200, 200,  200,  200,  200,  200),
    row("GET",    "/api/v1/no-such-thing/",                          404, 404,  404,  404,  404,  404),
    # the screens: pages without data, each logs in through the API on its device
    row("GET",    "/kiosk/",                                         200, 200,  200,  200,  200,  200),
    row("GET",    "/kitchen/",                                       200, 200,  200,  200,  200,  200),
    row("GET",    "/counter/",                                       200, 200,  200,  200,  200,  200),
    row("GET",    "/pickup/loja-a/",                                 200, 200,  200,  200,  200,  200),
    row("GET",    "/pickup/no-such-store/",                          404, 404,  404,  404,  404,  404),
    row("GET",    "/jsi18n/",                                        200, 200,  200,  200,  200,  200),
    row("POST",   "/i18n/setlang/",                                  302, 302,  302,  302,  302,  302,
        body={"language": "en"}),
    # operations
    row("GET",    "/healthz",                                        200, 200,  200,  200,  200,  200),
    row("GET",    "/readyz",                                         200, 200,  200,  200,  200,  200),
    row("GET",    "/metrics",                                        401, 401,  401,  401,  401,  401,
        note="METRICS_TOKEN, not a login"),
    # the Mercado Pago simulator (simulator mode only): Mercado Pago's pages and API, no login of ours
    row("GET",    "/mp-simulator/pay/{sim_order}/",                  200, 200,  200,  200,  200,  200),
    row("POST",   "/mp-simulator/v1/orders/{sim_order}/simulate",    400, 400,  400,  400,  400,  400, body={}),
    row("POST",   "/mp-simulator/v1/orders/{sim_order}/refunds/confirm", 400, 400, 400, 400, 400,  400,
        body={"outcome": "maybe"}),
    row("GET",    "/mp-simulator/v1/orders/{sim_order}",             401, 200,  200,  200,  200,  200,
        note="any bearer token, as Mercado Pago's own API wants one"),
    # the sales report and its exports (inside the back office)
    row("GET",    f"{ADMIN}reports/sales/",                          302, 302,  403,  403,  200,  200),
    row("GET",    f"{ADMIN}reports/sales.csv",                       302, 302,  403,  403,  200,  200),
    row("GET",    f"{ADMIN}reports/payments.csv",                    302, 302,  403,  403,  200,  200),
]
# fmt: on

# fmt: off
# The back office, model by model. Letters per role: v = may look (list, page, history: 200, else 403), a = add
# page, c = may change (the page has Save), d = delete page. Anonymous and kiosk logins are not staff: every
# back-office page sends them to the login page. `store` marks what kitchen and cashier logins see of their
# store only (VISIBLE).
NO = "-"
ADMIN_MODELS = {
    #                                     anon kiosk kitchen cashier manager  superuser
    "auth.group":                         (NO, NO,   NO,     NO,     NO,      "vacd"),
    "auth.user":                          (NO, NO,   NO,     NO,     NO,      "vacd"),
    "token_blacklist.outstandingtoken":   (NO, NO,   NO,     NO,     NO,      "vc"),
    "token_blacklist.blacklistedtoken":   (NO, NO,   NO,     NO,     NO,      "vacd"),
    "axes.accessattempt":                 (NO, NO,   NO,     NO,     NO,      "vcd"),
    "axes.accesslog":                     (NO, NO,   NO,     NO,     NO,      "vcd"),
    "axes.accessfailurelog":              (NO, NO,   NO,     NO,     NO,      "vcd"),
    "kiosk.auditrecord":                  (NO, NO,   NO,     NO,     "v",     "v"),
    "kiosk.workerheartbeat":              (NO, NO,   NO,     NO,     "v",     "v"),
    "django_tasks_database.dbtaskresult": (NO, NO,   NO,     NO,     "v",     "v"),
    "events.webhookendpoint":             (NO, NO,   NO,     NO,     "vacd",  "vacd"),
    "events.event":                       (NO, NO,   NO,     NO,     "v",     "v"),
    "events.eventdelivery":               (NO, NO,   NO,     NO,     "v",     "v"),
    "orders.category":                    (NO, NO,   NO,     NO,     "vac",   "vacd"),
    "orders.product":                     (NO, NO,   "v",    NO,     "vac",   "vac"),
    "orders.optiongroup":                 (NO, NO,   "v",    NO,     "vacd",  "vacd"),
    "orders.option":                      (NO, NO,   "v",    NO,     "vacd",  "vacd"),
    "orders.customer":                    (NO, NO,   NO,     NO,     "vc",    "vac"),
    "orders.store":                       (NO, NO,   NO,     NO,     "vac",   "vac"),
    "orders.staffmember":                 (NO, NO,   NO,     NO,     "vacd",  "vacd"),
    "orders.terminal":                    (NO, NO,   NO,     NO,     "vac",   "vacd"),
    "orders.order":                       (NO, NO,   "v",    "v",    "vc",    "vc"),     # store
    "payments.payment":                   (NO, NO,   "v",    "v",    "v",     "v"),      # store
    "payments.webhookdelivery":           (NO, NO,   NO,     NO,     "v",     "v"),
    "mp_simulator.simorder":              (NO, NO,   NO,     NO,     NO,      "v"),
    "mp_simulator.simrefund":             (NO, NO,   NO,     NO,     NO,      "v"),
    "mp_simulator.simchargeback":         (NO, NO,   NO,     NO,     NO,      "v"),
    "mp_simulator.simnotification":       (NO, NO,   NO,     NO,     NO,      "v"),
    "mp_simulator.simidempotencykey":     (NO, NO,   NO,     NO,     NO,      "v"),
}

# The admin actions each role is offered (besides "delete selected", offered with d above). A role that is not
# offered one cannot run it by posting it either (checked for every action and role).
Y = "yes"
ADMIN_ACTIONS = {
    #                                                          anon kiosk kitchen cashier manager superuser
    ("orders.order", "pay_at_counter"):                        (NO, NO,   NO,     Y,      Y,      Y),
    ("orders.order", "start_preparing"):                       (NO, NO,   NO,     NO,     Y,      Y),
    ("orders.order", "mark_ready"):                            (NO, NO,   NO,     NO,     Y,      Y),
    ("orders.order", "mark_completed"):                        (NO, NO,   NO,     NO,     Y,      Y),
    ("orders.order", "cancel_unpaid"):                         (NO, NO,   NO,     NO,     Y,      Y),
    ("payments.payment", "sync_with_mercadopago"):             (NO, NO,   NO,     NO,     Y,      Y),
    ("payments.payment", "approve_and_send_to_kitchen"):       (NO, NO,   NO,     NO,     Y,      Y),
    ("payments.payment", "mark_reviewed"):                     (NO, NO,   NO,     NO,     Y,      Y),
    ("payments.payment", "refund"):                            (NO, NO,   NO,     NO,     Y,      Y),
    ("payments.webhookdelivery", "process_again"):             (NO, NO,   NO,     NO,     Y,      Y),
    ("events.webhookendpoint", "rotate_secret"):               (NO, NO,   NO,     NO,     Y,      Y),
    ("events.eventdelivery", "send_again"):                    (NO, NO,   NO,     NO,     Y,      Y),
    ("django_tasks_database.dbtaskresult", "run_again"):       (NO, NO,   NO,     NO,     Y,      Y),
    ("axes.accessattempt", "cleanup_expired_attempts"):        (NO, NO,   NO,     NO,     NO,     Y),
}

# The back office's other pages, and its store boundaries (a page of another store's order or payment sends a
# kitchen or cashier login back to the index: 302 as "not found").
ADMIN_PAGES = [
    #                                                                    anon kiosk kitch cashr mangr super
    row("GET",  ADMIN,                                                    302, 302,  200,  200,  200,  200),
    row("GET",  f"{ADMIN}login/",                                         200, 200,  302,  302,  302,  302,
        note="a kiosk login is told it may not enter"),
    row("GET",  f"{ADMIN}password_change/",                               302, 302,  200,  200,  200,  200),
    row("GET",  f"{ADMIN}password_change/done/",                          302, 302,  200,  200,  200,  200),
    row("GET",  f"{ADMIN}autocomplete/?app_label=orders&model_name=order&field_name=terminal",
                                                                          302, 302,  403,  403,  200,  200,
        note="what the role may see of the related model (terminals)"),
    row("GET",  f"{ADMIN}autocomplete/?app_label=payments&model_name=payment&field_name=order",
                                                                          302, 302,  200,  200,  200,  200,
        note="orders, of the role's store only: VISIBLE"),
    row("GET",  f"{ADMIN}auth/user/{{cook}}/password/",                   302, 302,  403,  403,  403,  200),
    row("GET",  f"{ADMIN}jsi18n/",                                        302, 302,  200,  200,  200,  200),
    row("GET",  f"{ADMIN}r/{{order_type}}/{{order_b}}/",                  302, 302,  404,  404,  404,  404),
    row("GET",  f"{ADMIN}orders/",                                        302, 302,  200,  200,  200,  200),
    row("GET",  f"{ADMIN}payments/",                                      302, 302,  200,  200,  200,  200),
    row("GET",  f"{ADMIN}kiosk/",                                         302, 302,  404,  404,  200,  200),
    row("GET",  f"{ADMIN}events/",                                        302, 302,  404,  404,  200,  200),
    row("GET",  f"{ADMIN}django_tasks_database/",                         302, 302,  404,  404,  200,  200),
    row("GET",  f"{ADMIN}auth/",                                          302, 302,  404,  404,  404,  200),
    row("GET",  f"{ADMIN}token_blacklist/",                               302, 302,  404,  404,  404,  200),
    row("GET",  f"{ADMIN}axes/",                                          302, 302,  404,  404,  404,  200),
    row("GET",  f"{ADMIN}mp_simulator/",                                  302, 302,  404,  404,  404,  200),
    # money taken at the counter, refunds, the review queue
    row("GET",  f"{ADMIN}orders/order/counter-payment/?ids={{unpaid_a}}", 302, 302,  403,  200,  200,  200),
    row("GET",  f"{ADMIN}orders/order/counter-payment/?ids={{unpaid_b}}", 302, 302,  403,  404,  200,  200),
    row("POST", f"{ADMIN}orders/order/counter-payment/",                  302, 302,  403,  404,  200,  200,
        body={"ids": "{unpaid_b}", "method": "bitcoin"}, note="another store's order: not found"),
    row("GET",  f"{ADMIN}payments/payment/{{payment_a}}/refund/",         302, 302,  403,  403,  200,  200),
    row("GET",  f"{ADMIN}payments/payment/review/?ids={{payment_a}}",     302, 302,  403,  403,  200,  200),
    # another store's order and payment
    row("GET",  f"{ADMIN}orders/order/{{order_b}}/change/",               302, 302,  302,  302,  200,  200),
    row("GET",  f"{ADMIN}orders/order/{{order_b}}/history/",              302, 302,  302,  302,  200,  200),
    row("GET",  f"{ADMIN}payments/payment/{{payment_b}}/change/",         302, 302,  302,  302,  200,  200),
    row("GET",  f"{ADMIN}payments/payment/{{payment_b}}/history/",        302, 302,  302,  302,  200,  200),
    row("POST", f"{ADMIN}logout/",                                        302, 302,  200,  200,  200,  200,
        note="its own session, so the others' stay logged in; not staff: to the index"),
]

AUTOCOMPLETE_ORDERS = f"{ADMIN}autocomplete/?app_label=payments&model_name=payment&field_name=order"
# Which orders each role finds in the lists (by the orders' names in the world; None: the list is not theirs).
A_ALL = {"order_a", "order_a2", "unpaid_a"}
EVERY = {"order_a", "order_a2", "unpaid_a", "order_b", "unpaid_b"}
PAID = {"order_a", "order_a2", "order_b"}
VISIBLE = {
    #                             anon  kiosk                     kitchen                  cashier                  manager superuser
    "/api/v1/orders/":           (None, {"order_a", "unpaid_a"}, A_ALL,                   A_ALL,                   EVERY,  EVERY),
    "/api/v1/kitchen/orders/":   (None, None,                    {"order_a", "order_a2"}, None,                    PAID,   PAID),
    f"{ADMIN}orders/order/":     (None, None,                    A_ALL,                   A_ALL,                   EVERY,  EVERY),
    f"{ADMIN}payments/payment/": (None, None,                    {"order_a", "order_a2"}, {"order_a", "order_a2"}, PAID,   PAID),
    AUTOCOMPLETE_ORDERS:         (None, None,                    A_ALL,                   A_ALL,                   EVERY,  EVERY),
}
# fmt: on

# The objects whose pages the back-office rows open (others: the first of their table).
SAMPLES = {
    "orders.order": "order_a",
    "payments.payment": "payment_a",
    "orders.customer": "customer",
    "orders.product": "burger",
    "orders.option": "option",
    "events.webhookendpoint": "endpoint",
    "auth.user": "cook",
}

# The only answers where a customer's CPF and e-mail may be read in full: their own page in the back office
# (a manager corrects them there). Everywhere else (lists, orders, the pickup board, exports, events) masked.
PII_ALLOWED = {
    (f"{ADMIN}orders/customer/{{customer}}/change/", "manager"),
    (f"{ADMIN}orders/customer/{{customer}}/change/", "superuser"),
}


# --- The world the rows talk about ------------------------------------------------------------------


@dataclasses.dataclass
class World:
    users: dict  # role -> User (None: anonymous)
    names: dict  # placeholder -> value: "{order_a}" in a row
    logins: dict  # role -> {"username", "password", "access", "refresh", "logout_refresh"}

    def order_name(self, order_id) -> str:
        return {str(v): k for k, v in self.names.items()}.get(str(order_id), str(order_id))

    def sample(self, label: str) -> str:
        """The placeholder of the object whose back-office pages the matrix opens for a model: the world's named
        one (store A's order and payment, the customer...), else the first row."""
        named = SAMPLES.get(label)
        if named:
            return named
        key = label.replace(".", "_")
        if key not in self.names:
            first = apps.get_model(label)._default_manager.order_by("pk").first()
            assert first is not None, f"the world has no {label}: add one to build_world"
            self.names[key] = quote(first.pk)
        return key


def build_world(mercadopago) -> World:
    """Stores A and B; terminals A1 (the kiosk's), A2 and B1; an order of each terminal paid (A1's through
    Mercado Pago, partly refunded, in preparation; the others at the counter) and one unpaid at A1 and B1; the
    A1 and B orders carry a customer with CPF and e-mail (CPF na nota); something in every admin table."""
    store_a, store_b = store_named("Loja A"), store_named("Loja B")

    def terminal(store, name):
        user = make_user(f"kiosk-{name}", "kiosk")
        return Terminal.objects.create(name=f"Totem {name}", store=store, external_pos_id=f"POS{name}", user=user)

    a1, a2, b1 = terminal(store_a, "a1"), terminal(store_a, "a2"), terminal(store_b, "b1")
    users = {
        "anonymous": None,
        "kiosk": a1.user,
        "kitchen": staff_of(make_user("cook-a", "kitchen", is_staff=True), store_a),
        "cashier": staff_of(make_user("cashier-a", "cashier", is_staff=True), store_a),
        "manager": make_user("boss", "manager", is_staff=True),
        "superuser": make_user("root", is_staff=True, is_superuser=True),
    }
    lanche = Category.objects.create(name="Lanche", slug="lanche", position=1)
    burger = Product.objects.create(category=lanche, name="X-Burger", price=Decimal("25.90"))
    old = Product.objects.create(category=lanche, name="X-Antigo", price=Decimal("9.90"))
    extras = OptionGroup.objects.create(product=burger, name="Adicionais", max_choices=3)
    bacon = Option.objects.create(group=extras, name="Bacon", price=Decimal("4.00"))
    customer, _ = customer_identify(cpf=CPF, name="Maria Clara", email=EMAIL)

    def order(terminal, **extra) -> Order:
        return order_place(terminal=terminal, items=[ItemRequest(burger.pk, 2)], **extra)

    def bearer(user) -> str:
        return f"Bearer {RefreshToken.for_user(user).access_token}"

    # A1's order, paid with the QR through the simulated Mercado Pago, partly refunded, being prepared.
    order_a = order(a1, customer_cpf=CPF, cpf_on_receipt=True)
    checkout = Client().post(
        f"/api/v1/orders/{order_a.pk}/checkout/", HTTP_AUTHORIZATION=bearer(a1.user), HTTP_IDEMPOTENCY_KEY=new_key()
    )
    assert checkout.status_code == 201, checkout.content
    payment_a = checkout.json()["payment"]
    mercadopago.pay(payment_a["provider_order_id"])
    mercadopago.deliver()
    order_advance(order_id=order_a.pk, status=Order.Status.IN_PREPARATION)
    refund_request(payment_id=payment_a["id"], amount=Decimal("1.00"), reason="batata fria", actor="boss")
    SimChargeback.objects.create(
        id="CHB" + "0" * 26, payment=SimPayment.objects.first(), case_id="1", created_date=timezone.now()
    )
    # Subscribers to our events: what follows is delivered to them (queued: no worker runs here).
    endpoint = WebhookEndpoint.objects.create(url="https://fiscal.example.com/hooks", events=["*"])
    spare = WebhookEndpoint.objects.create(url="https://spare.example.com/hooks", events=["order.paid"])
    order_a2, order_b = order(a2), order(b1, customer_cpf=CPF, cpf_on_receipt=True)
    for paid in (order_a2, order_b):
        order_pay_at_counter(order_id=paid.pk, method="cash", amount=paid.total, actor="cashier-a")
    unpaid_a, unpaid_b = order(a1), order(b1)
    audit(user=users["manager"], obj=order_a, action="Kitchen: start preparing")
    now = timezone.now()
    WorkerHeartbeat.objects.create(worker_id="w1", hostname="box", pid=1, started_at=now, seen_at=now)
    # django-axes and the token blacklist: a failed login, a login, a logout.
    guess = {"username": "ghost", "password": "guess"}  # another name and address: the login below resets neither
    Client(REMOTE_ADDR="203.0.113.9").post("/api/v1/auth/token/", guess, content_type="application/json")
    AccessFailureLog.objects.create(  # kept only with AXES_ENABLE_ACCESS_FAILURE_LOG
        user_agent="curl",
        ip_address="203.0.113.9",
        username="ghost",
        http_accept="*/*",
        path_info="/api/v1/auth/token/",
    )
    login = Client().post(
        "/api/v1/auth/token/", {"username": "boss", "password": "boss"}, content_type="application/json"
    )
    Client().post("/api/v1/auth/logout/", {"refresh": login.json()["refresh"]}, content_type="application/json")

    payments = {p.order_id: p.pk for p in Payment.objects.all()}
    orders = {"order_a": order_a, "order_a2": order_a2, "order_b": order_b, "unpaid_a": unpaid_a, "unpaid_b": unpaid_b}
    names = {
        **{name: str(o.pk) for name, o in orders.items()},
        "payment_a": payment_a["id"],
        "payment_b": payments[order_b.pk],
        "burger": burger.pk,
        "old_product": old.pk,
        "option": bacon.pk,
        "customer": customer.pk,
        "cook": users["kitchen"].pk,
        "endpoint": endpoint.pk,
        "spare_endpoint": spare.pk,
        "sim_order": payment_a["provider_order_id"],
        "order_type": ContentType.objects.get_for_model(Order).pk,
    }
    logins = {"anonymous": {"username": "nobody", "password": "wrong", "refresh": "x", "logout_refresh": "x"}}
    for role, user in users.items():
        if user is not None:
            logins[role] = {
                "username": user.username,
                "password": user.username,
                "access": str(RefreshToken.for_user(user).access_token),
                "refresh": str(RefreshToken.for_user(user)),
                "logout_refresh": str(RefreshToken.for_user(user)),
            }
    return World(users=users, names=names, logins=logins)


# --- Sending a row ----------------------------------------------------------------------------------


def fill(value, names: dict):
    """A row's path or body with the world's values in place of {name}."""
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: str(names[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


def body_text(response) -> str:
    """The answer's text, read once (a streamed export too)."""
    if not hasattr(response, "matrix_text"):
        content = b"".join(response.streaming_content) if response.streaming else response.content
        response.matrix_text = content.decode(errors="replace")
    return response.matrix_text


def send(client: Client, method: str, path: str, body, *, bearer: str | None = None):
    """A request as its caller sends it: the API and the simulator JSON with a fresh Idempotency-Key, the back
    office and the screens' forms form-encoded."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {bearer}"} if bearer else {}
    if method == "GET":
        return client.get(path, **headers)
    if path.startswith(("/api/", "/mp-simulator/")):
        headers["HTTP_IDEMPOTENCY_KEY"] = new_key()
        payload = json.dumps(body if body is not None else {})
        return client.generic(method, path, payload, content_type="application/json", **headers)
    return client.post(path, body or {}, **headers)


class Matrix:
    """Runs rows for every role and keeps every mismatch, to report them all at once."""

    def __init__(self, world: World):
        self.world = world
        self.mismatches: list[str] = []
        self.requests = 0
        self.responses = {}  # (method, path template, role) -> the last response
        self.api = {role: Client() for role in ROLES}  # no session: the JWT is the login
        self.browser = {}
        for role, user in world.users.items():
            self.browser[role] = Client()
            if user is not None:
                self.browser[role].force_login(user)

    def fail(self, role: str, what: str, message: str):
        self.mismatches.append(f"{role:9} {what}: {message}")

    def request(self, role: str, method: str, path_template: str, body=None, *, fresh_session=False):
        path = fill(path_template, self.world.names)
        body = fill(body, {**self.world.names, **self.world.logins[role]})
        admin_page = path.startswith(ADMIN)
        if admin_page:
            client = self.browser[role]
            if fresh_session:
                client = Client()
                if self.world.users[role] is not None:
                    client.force_login(self.world.users[role])
            response = send(client, method, path, body)
        else:
            response = send(self.api[role], method, path, body, bearer=self.world.logins[role].get("access"))
        self.requests += 1
        self.responses[(method, path_template, role)] = response
        what = f"{method} {path_template}"
        text = body_text(response)
        if (path_template, role) not in PII_ALLOWED:
            for secret in (CPF, CPF_SHOWN, EMAIL, EMAIL.split("@")[0]):
                if secret in text:
                    self.fail(role, what, f"shows the customer's {secret!r} in full")
        to_login = response.get("Location", "").startswith(f"{ADMIN}login/") or path.endswith("/logout/")
        if admin_page and role in ("anonymous", "kiosk") and response.status_code == 302 and not to_login:
            self.fail(role, what, f"sent to {response['Location']}, not to the login page")
        return response

    def expect(self, role: str, what: str, response, expected: int):
        if response.status_code != expected:
            detail = ""
            if response.get("Content-Type", "").startswith("application/"):
                detail = " " + body_text(response)[:160]
            self.fail(role, what, f"{response.status_code}, expected {expected}{detail}")

    def run_rows(self, rows: list[Row]):
        for r in rows:
            for role, expected in zip(ROLES, r.expect, strict=True):
                response = self.request(role, r.method, r.path, r.body, fresh_session=r.path.endswith("logout/"))
                self.expect(role, f"{r.method} {r.path}", response, expected)

    def check_visible(self):
        """The lists hold exactly the orders each role may see."""
        for path, per_role in VISIBLE.items():
            for role, wanted in zip(ROLES, per_role, strict=True):
                response = self.responses.get(("GET", path, role))
                if wanted is None or response is None or response.status_code != 200:
                    continue
                if path.startswith(ADMIN) and response.context is not None:
                    shown = {getattr(obj, "order_id", obj.pk) for obj in response.context["cl"].result_list}
                else:
                    data = response.json()
                    shown = {o["id"] for o in (data["results"] if isinstance(data, dict) else data)}
                names = {self.world.order_name(order_id) for order_id in shown}
                if names != wanted:
                    self.fail(role, f"GET {path}", f"lists {sorted(names)}, expected {sorted(wanted)}")

    # --- the back office, model by model ------------------------------------------------------------

    def run_admin_models(self) -> dict:
        """Every registered model's list, add, change, history and delete pages for every role; returns the
        actions each role is offered on each list."""
        offered = {}
        for label, access in ADMIN_MODELS.items():
            placeholder = self.world.sample(label)
            base = f"{ADMIN}{label.replace('.', '/')}/"
            pages = {
                "v": [base, f"{base}{{{placeholder}}}/change/", f"{base}{{{placeholder}}}/history/"],
                "a": [f"{base}add/"],
                "d": [f"{base}{{{placeholder}}}/delete/"],
            }
            for role, letters in zip(ROLES, access, strict=True):
                staff = role not in ("anonymous", "kiosk")
                for letter, paths in pages.items():
                    for path in paths if staff else [base]:  # not staff: the list shows the way to the login
                        response = self.request(role, "GET", path)
                        expected = (200 if letter in letters else 403) if staff else 302
                        self.expect(role, f"GET {path}", response, expected)
                        editable = 'name="_save"' in body_text(response)
                        if path.endswith("/change/") and response.status_code == 200 and editable != ("c" in letters):
                            self.fail(role, f"GET {path}", f"may{'' if 'c' in letters else ' not'} change")
                        if path == base and response.status_code == 200:
                            form = response.context.get("action_form")
                            choices = form.fields["action"].choices if form else []
                            offered[(label, role)] = {name for name, _ in choices if name}
        return offered

    def check_actions(self, offered: dict):
        """Each role is offered exactly its actions; one not offered cannot be run by posting it."""

        def state():
            return (
                AuditRecord.objects.count(),
                LogEntry.objects.count(),
                sorted(Order.objects.values_list("pk", "status")),
                sorted(Payment.objects.values_list("pk", "status")),
            )

        before = state()
        for label, access in ADMIN_MODELS.items():
            actions = {name: per_role for (model, name), per_role in ADMIN_ACTIONS.items() if model == label}
            actions["delete_selected"] = tuple(Y if "d" in letters else NO for letters in access)
            for name, per_role in actions.items():
                for role, letters, may in zip(ROLES, access, per_role, strict=True):
                    if role in ("anonymous", "kiosk"):
                        continue  # not staff: sent to the login page by every back-office URL (the lists above)
                    what = f"action {label} {name}"
                    if "v" in letters and (name in offered.get((label, role), set())) != (may == Y):
                        self.fail(role, what, "offered" if may != Y else "not offered")
                    if may == Y:
                        continue
                    path = f"{ADMIN}{label.replace('.', '/')}/"
                    body = {"action": name, "_selected_action": [f"{{{self.world.sample(label)}}}"]}
                    response = self.request(role, "POST", path, body)
                    # Refused, or the list again (Django redirects to it when the role has other actions there).
                    expected = 403 if "v" not in letters else 302 if offered.get((label, role)) else 200
                    self.expect(role, f"POST {what}", response, expected)
        if state() != before:
            self.mismatches.append("an action posted by a role it is not offered to changed something")


# --- The tests ----------------------------------------------------------------------------------------


@pytest.fixture
def world(mercadopago, settings):
    settings.METRICS_TOKEN = "the-metrics-token"  # as in production: /metrics wants it, not a login
    return build_world(mercadopago)


def report(matrix: Matrix) -> str:
    return f"{len(matrix.mismatches)} mismatches in {matrix.requests} requests:\n" + "\n".join(matrix.mismatches)


def figures(record_property, matrix: Matrix, what: str):
    """The matrix's size in the run's closing figures (tests/conftest.py prints them)."""
    record_property(
        "figures",
        f"permission matrix, {what}: {len(ROLES)} roles, {matrix.requests} requests, "
        f"{len(matrix.mismatches)} mismatches",
    )


def test_the_api_screens_and_operations_answer_each_role_as_the_matrix_says(world, record_property):
    matrix = Matrix(world)
    matrix.run_rows(API)
    matrix.check_visible()
    figures(record_property, matrix, f"API, screens and operations ({len(API)} rows)")
    assert not matrix.mismatches, report(matrix)
    unpaid_b = Order.objects.get(pk=world.names["unpaid_b"])
    assert unpaid_b.status == Order.Status.AWAITING_PAYMENT and not unpaid_b.payments.exists()


def test_the_back_office_answers_each_role_as_the_matrix_says(world, record_property):
    matrix = Matrix(world)
    offered = matrix.run_admin_models()
    matrix.run_rows(ADMIN_PAGES)
    matrix.check_visible()
    matrix.check_actions(offered)
    what = f"back office ({len(ADMIN_MODELS)} models, {len(ADMIN_ACTIONS)} actions, {len(ADMIN_PAGES)} other pages)"
    figures(record_property, matrix, what)
    assert not matrix.mismatches, report(matrix)


# --- Nothing without a row ------------------------------------------------------------------------------

DUMMY = {
    "order_a": "00000000-0000-0000-0000-000000000000",
    "order_a2": "00000000-0000-0000-0000-000000000000",
    "order_b": "00000000-0000-0000-0000-000000000000",
    "unpaid_a": "00000000-0000-0000-0000-000000000000",
    "unpaid_b": "00000000-0000-0000-0000-000000000000",
    "sim_order": "ORD1",
}


def _routes(patterns, prefix=""):
    """Every route outside the admin site (its pages are ADMIN_MODELS and ADMIN_PAGES): (key, pattern)."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name != "admin":
                yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield pattern.name or prefix + str(pattern.pattern), pattern


def _methods(pattern: URLPattern) -> set[str] | None:
    """The methods a class-based view answers (None for a function: one row will do)."""
    view_class = getattr(pattern.callback, "view_class", None)
    if view_class is None:
        return None
    allowed = getattr(pattern.callback, "view_initkwargs", {}).get("http_method_names", view_class.http_method_names)
    return {m.upper() for m in allowed if m not in ("head", "options") and hasattr(view_class, m)}


def _row_key(path_template: str) -> str:
    path = fill(path_template, {**dict.fromkeys(re.findall(r"\{(\w+)\}", path_template), "1"), **DUMMY})
    match = resolve(path.split("?")[0])
    return match.url_name or match.route


def test_every_route_and_admin_action_has_a_row():
    """A new endpoint, method, admin page or admin action fails here until the matrix says who gets it."""
    rows = {}
    for r in API + ADMIN_PAGES:
        rows.setdefault(_row_key(r.path), set()).add(r.method)
    missing = []
    for key, pattern in _routes(get_resolver().url_patterns):
        methods = _methods(pattern)
        if key not in rows:
            missing.append(f"{key}: no row")
        elif methods is not None and methods - rows[key]:
            missing.append(f"{key}: no row for {sorted(methods - rows[key])}")

    registered = {m._meta.label_lower: model_admin for m, model_admin in admin.site._registry.items()}
    missing += [f"admin model {label}: no row" for label in sorted(set(registered) - set(ADMIN_MODELS))]
    missing += [f"admin model {label}: not registered" for label in sorted(set(ADMIN_MODELS) - set(registered))]
    generic = {f"{label.replace('.', '_')}_{page}" for label in registered
               for page in ("changelist", "add", "change", "history", "delete")}  # fmt: skip
    for pattern in admin.site.get_urls():
        for inner in getattr(pattern, "url_patterns", [pattern]):
            if inner.name and inner.name not in generic and inner.name not in rows:
                missing.append(f"admin page {inner.name}: no row in ADMIN_PAGES")
    apps_listed = {r.path[len(ADMIN) : -1] for r in ADMIN_PAGES if re.fullmatch(rf"{ADMIN}\w+/", r.path)}
    missing += [
        f"admin app {app}: no row" for app in sorted({label.split(".")[0] for label in registered} - apps_listed)
    ]

    request = RequestFactory().get(ADMIN)
    request.user = User(is_superuser=True, is_staff=True, is_active=True)
    for label, model_admin in registered.items():
        actions = set(model_admin.get_actions(request)) - {"delete_selected"}
        listed = {name for model, name in ADMIN_ACTIONS if model == label}
        missing += [f"admin action {label} {name}: no row" for name in sorted(actions - listed)]
        missing += [f"admin action {label} {name}: no such action" for name in sorted(listed - actions)]
    assert not missing, "add it to the matrix (tests/test_permission_matrix.py):\n" + "\n".join(missing)


GRANTED = ["refund_payment", "view_sales_report", "view_webhookdelivery", "view_event", "view_eventdelivery"]


def test_a_cashier_given_more_permissions_still_sees_only_its_store(world):
    """Permissions can be given to one login in the back office (refunds, the sales report, the notifications,
    the events); a store's login keeps to its store with them."""
    cashier = world.users["cashier"]
    cashier.user_permissions.add(*Permission.objects.filter(codename__in=GRANTED))
    payment_b = Payment.objects.get(pk=world.names["payment_b"])
    WebhookDelivery.objects.create(topic="order", resource_id="ORDB", payment=payment_b)
    matrix = Matrix(world)
    browser = matrix.browser["cashier"]
    payment_a, payment_b = world.names["payment_a"], world.names["payment_b"]
    assert browser.get(f"{ADMIN}payments/payment/{payment_a}/refund/").status_code == 200
    assert browser.get(f"{ADMIN}payments/payment/{payment_b}/refund/").status_code == 404
    refund_b = {"amount": "1.00", "reason": "x", "confirm_order_number": "1", "form_key": "0" * 32}
    assert browser.post(f"{ADMIN}payments/payment/{payment_b}/refund/", refund_b).status_code == 404
    assert browser.get(f"{ADMIN}payments/payment/review/", {"ids": payment_b}).status_code == 404
    assert browser.post(f"{ADMIN}payments/payment/review/", {"ids": payment_b, "comment": "ok"}).status_code == 404
    api = matrix.request("cashier", "POST", "/api/v1/payments/{payment_b}/refunds/", {"reason": "x"})
    assert api.status_code == 403  # the API's refunds are managers'

    page = browser.get(f"{ADMIN}reports/sales/")
    assert page.status_code == 200 and page.context["store"].slug == "loja-a"
    assert [slug for slug, _ in page.context["stores"]] == ["loja-a"]
    assert browser.get(f"{ADMIN}reports/sales/", {"store": "loja-b"}).context["error"]
    assert browser.get(f"{ADMIN}reports/sales.csv", {"store": "loja-b"}).status_code == 400
    export = matrix.request("cashier", "GET", f"{ADMIN}reports/payments.csv")
    rows = body_text(export)
    assert export.status_code == 200 and world.names["order_a"] in rows and world.names["order_b"] not in rows
    lists = {
        "payments/webhookdelivery/": lambda delivery: delivery.payment.order_id,
        "events/event/": lambda event: event.order_id,
        "events/eventdelivery/": lambda delivery: delivery.event.order_id,
    }
    for path, order_of in lists.items():
        page = matrix.request("cashier", "GET", f"{ADMIN}{path}")
        assert page.status_code == 200, path
        orders = {world.order_name(order_of(row)) for row in page.context["cl"].result_list}
        assert orders and orders <= A_ALL, (path, orders)  # store A's orders only
    assert not matrix.mismatches, report(matrix)  # no CPF or e-mail in what it got
    assert not Refund.objects.filter(payment_id=payment_b).exists()
