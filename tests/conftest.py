"""Shared fixtures: the roles, a kiosk terminal, a small menu and authenticated API clients."""

import importlib
import itertools
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.client import RequestFactory
from rest_framework.test import APIClient

from orders.models import Category, Product, StaffMember, Store, Terminal
from tests.mercadopago_double import double  # noqa: F401  (a fixture: Mercado Pago over real HTTP)

# kiosk.urls mounts the simulator's pages if MERCADOPAGO_SIMULATOR is on when it is first imported: import it now,
# in the configured mode, not inside a test that switched to live mode (the `double` fixture); a pytest-xdist
# worker that built it there answered 404 to every /mp-simulator/ request for the rest of its run.
importlib.import_module("kiosk.urls")

_keys = itertools.count(1)
# What Django's test clients send unless told otherwise; the suite adds `Accept-Language: en` (below).
BROWSER_ENVIRON = RequestFactory._base_environ

requires_mysql = pytest.mark.skipif(
    connection.vendor != "mysql",
    reason="needs real row locks: run with DATABASE_URL=mysql://... (MariaDB/MySQL); SQLite serialises writers",
)


def pytest_configure(config):
    """The translations as Django reads them: a catalogue (.po) newer than its compiled .mo is compiled first, so a
    plain `pytest` after editing one (or after a pull) tests what the build would ship. Once, in the controller
    (pytest-xdist's workers start after it)."""
    import shutil
    import subprocess
    from pathlib import Path

    if hasattr(config, "workerinput"):
        return
    for po in sorted(Path(__file__).resolve().parent.parent.glob("locale/*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        if not shutil.which("msgfmt"):
            raise pytest.UsageError(f"{po} needs compiling and msgfmt is missing: install gettext (make test does).")
        subprocess.run(["msgfmt", "--check-format", "-o", str(mo), str(po)], check=True)


@pytest.fixture(autouse=True)
def _english_unless_asked(monkeypatch):
    """The suite reads messages in English, the source language: Django's test clients send `Accept-Language: en`
    unless a test sends another, and each test starts with English active (code called outside a request, such
    as a service, speaks the active language). Portuguese, the default for everyone else, is
    tests/test_i18n.py's."""
    from django.utils import translation

    def base_environ(self, **request):
        environ = BROWSER_ENVIRON(self, **request)
        environ.setdefault("HTTP_ACCEPT_LANGUAGE", "en")
        return environ

    monkeypatch.setattr(RequestFactory, "_base_environ", base_environ)
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counters live in the cache: every test starts with none spent."""
    from django.core.cache import cache

    cache.clear()
    yield


def store_named(name: str = "Loja 1", **extra) -> Store:
    """A store by name (made on first use). Takeaway only unless told otherwise, so an order needs no
    `dining`; tests/test_stores.py covers the stores that offer both."""
    from django.utils.text import slugify

    defaults = {"slug": slugify(name), "offers_eat_in": False, "offers_takeaway": True, **extra}
    return Store.objects.get_or_create(name=name, defaults=defaults)[0]


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
    return Terminal.objects.create(name="Totem A", store=store_named("Loja 1"), external_pos_id="POSA", user=kiosk_user)


@pytest.fixture
def other_terminal(db):
    user = make_user("kiosk-b", "kiosk")
    return Terminal.objects.create(name="Totem B", store=store_named("Loja 1"), external_pos_id="POSB", user=user)


def staff_of(user: User, store: Store) -> User:
    """Makes a kitchen or cashier login work in `store` (its StaffMember)."""
    StaffMember.objects.update_or_create(user=user, defaults={"store": store})
    return user


@pytest.fixture
def kitchen_user(db):
    """A kitchen login of "Loja 1", the store of the `terminal` fixture."""
    return staff_of(make_user("cook", "kitchen"), store_named("Loja 1"))


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


# --- Mercado Pago: the simulator, reached through the real SDK -----------------------------------


class MercadoPagoStandIn:
    """Controls for the simulated Mercado Pago in a test, reached through the real SDK.

    Time stands still: the `mercadopago` fixture turns the simulator's pump off and makes notifications and
    refunds due only in an hour, so nothing reaches our notification URL and no refund settles unless the
    test says so, exactly as with the real thing, where both come after our call has returned:

    - `pay(provider_order_id, outcome="approved", **kwargs)`: the buyer pays (engine.simulate: "approved",
      "rejected", "expired", "charged_back"; kwargs such as paid_amount, duplicates, signature_ts, notify).
      Queues the notification; delivers nothing. Returns the order as Mercado Pago shows it.
    - `deliver(*, only=None)`: Mercado Pago sends every queued notification now (one attempt each), posted
      with Django's test client to our notification URL (path and query, signed headers), then our worker
      runs what is due (`run_tasks()`: the notifications are applied there); returns our responses in order,
      and appends them to `deliveries`. `only` keeps those of one action
      ("order.refunded") or topic ("order", "payment"). A notification we refused (non-2xx) is queued
      again: the next `deliver()` re-sends it with the same x-request-id.
    - `confirm_refunds(outcome=None)`: Mercado Pago settles every processing refund ("processed", or
      `outcome`: "processed" | "failed"); queues order.refunded, delivers nothing. Returns how many.
    - `queued()`: the notifications still waiting (SimNotification rows), to assert that nothing was sent
      inside a call.
    - `settle()`: `confirm_refunds()` then `deliver()`; returns the responses.

    `calls` lists the SDK's requests as (method, url); `faults` injects failures at the HTTP boundary, one
    per SDK call: "timeout", an HTTP status (int), or None for a normal answer.
    """

    def __init__(self, webhook_client):
        self.deliveries: list = []
        self.calls: list[tuple[str, str]] = []
        self.faults: list = []  # consumed one per SDK call: "timeout", an HTTP status (int), or None
        self._webhook_client = webhook_client
        self._delivering: list | None = None

    def pay(self, provider_order_id: str, outcome: str = "approved", **kwargs):
        from payments.simulator.engine import simulate

        return simulate(provider_order_id, outcome, **kwargs)

    def deliver(self, *, only: str | None = None) -> list:
        from payments.simulator import notify

        self._delivering = []
        try:
            notify.send_due(everything=True, only=only)
            self.run_tasks()
            return self._delivering
        finally:
            self._delivering = None

    def run_tasks(self) -> int:
        """Our worker runs what is due (applying notifications, automatic refunds, cancelling QRs)."""
        from kiosk.worker import run_pending

        return run_pending()

    def confirm_refunds(self, outcome: str | None = None) -> int:
        from payments.simulator import engine

        return engine.confirm_refunds(everything=True, outcome=outcome)

    def queued(self) -> list:
        from payments.simulator.models import SimNotification

        return list(SimNotification.objects.filter(status=SimNotification.Status.QUEUED).order_by("due_at", "id"))

    def settle(self) -> list:
        self.confirm_refunds()
        return self.deliver()

    def _post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        """The simulator's transport in tests: our notification URL through Django's test client."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k.lower() != "content-type"}
        response = self._webhook_client.post(
            f"{parts.path}?{parts.query}", body, content_type="application/json", **extra
        )
        self.deliveries.append(response)
        if self._delivering is not None:
            self._delivering.append(response)
        return response.status_code


@pytest.fixture
def mercadopago(monkeypatch, settings):
    import requests
    from django.test import Client

    from payments.gateway import breaker
    from payments.simulator import notify
    from payments.simulator.client import SimulatorHttpClient

    settings.MERCADOPAGO_MAX_RETRIES = 1
    settings.MERCADOPAGO_SIMULATOR_AUTOPUMP = False
    settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY = 3600
    settings.MERCADOPAGO_SIMULATOR_REFUND_DELAY = 3600
    breaker.reset()
    stand_in = MercadoPagoStandIn(Client())

    original = SimulatorHttpClient.request

    def request(self, method, url, maxretries=None, retry_on=None, backoff_factor=None, **kwargs):
        stand_in.calls.append((method, url))
        fault = stand_in.faults.pop(0) if stand_in.faults else None
        if fault == "timeout":
            raise requests.Timeout("simulated timeout")
        if isinstance(fault, int):
            return {"status": fault, "response": {"errors": [{"code": "internal_error", "message": "simulated"}]}}
        return original(self, method, url, maxretries, retry_on, backoff_factor, **kwargs)

    monkeypatch.setattr(notify, "deliver", stand_in._post)
    monkeypatch.setattr(SimulatorHttpClient, "request", request)
    yield stand_in
    breaker.reset()


@pytest.fixture
def migration_data(db):
    """Transactional tests empty every table between tests, including what data migrations created
    (the roles with their permissions, the pickup counter): put it back, by running those migrations' code."""
    import importlib

    from django.apps import apps

    importlib.import_module("orders.migrations.0002_roles_and_pickup_counter").create_roles(apps, None)
    importlib.import_module("orders.migrations.0007_cashier_role_and_store_staff").grant(apps, None)
    importlib.import_module("orders.migrations.0008_menu_options").grant(apps, None)
    importlib.import_module("payments.migrations.0002_manager_permissions").grant(apps, None)
    importlib.import_module("payments.migrations.0005_manager_change_permissions").grant(apps, None)
    importlib.import_module("payments.migrations.0006_counter_payments").grant(apps, None)
    importlib.import_module("kiosk.migrations.0003_manager_audit_permission").grant(apps, None)
    importlib.import_module("kiosk.events.migrations.0002_manager_permissions").grant(apps, None)


# --- Orders and payments a test starts from -------------------------------------------------------


@pytest.fixture
def order(kiosk, menu):
    """An order of 61.70 (2 x X-Burger 25.90 + Suco 9.90) placed at the kiosk, not checked out yet."""
    body = place(
        kiosk, [{"product_id": menu["burger"].pk, "quantity": 2}, {"product_id": menu["juice"].pk, "quantity": 1}]
    )
    assert body.status_code == 201
    return body.json()


@pytest.fixture
def paid(kiosk, order, mercadopago):
    """That order, paid through the simulator (its notification delivered) and in the kitchen queue."""
    from payments.models import Payment

    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.deliver()
    stored = Payment.objects.get(pk=payment["id"])
    assert stored.status == "approved"
    return stored


# --- A real worker process -------------------------------------------------------------------------


def database_url_for_subprocess() -> str:
    """The test database as a DATABASE_URL, for a `manage.py` process started by a test."""
    from urllib.parse import quote

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user, password = quote(db["USER"], safe=""), quote(db["PASSWORD"] or "", safe="")
    return f"mysql://{user}:{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


class WorkerProcesses:
    """Starts `manage.py run_worker` processes on the test database (transactional tests only: the worker
    must see what the test committed). Stopped (SIGTERM, then SIGKILL) at the end of the test."""

    def __init__(self):
        self.processes = []
        self.logs_files = []

    def start(self, *args: str, **env: str):
        import os
        import subprocess
        import sys
        import tempfile

        from django.conf import settings

        environment = {
            **os.environ,
            "DATABASE_URL": database_url_for_subprocess(),
            "SECRET_KEY": settings.SECRET_KEY,  # the simulator's webhook secret derives from it
            "DEBUG": "true",
            "WORKER_HEARTBEAT_SECONDS": "0.5",
            "WORKER_STALE_SECONDS": "3",
            "MERCADOPAGO_SIMULATOR_AUTOPUMP": "false",
            **{k: str(v) for k, v in env.items()},
        }
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the fixture, after the test reads it
        self.logs_files.append(log)
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_worker",
                "--no-reload",
                "--no-startup-delay",
                "--interval",
                "0.05",
                *args,
            ],
            cwd=settings.BASE_DIR,
            env=environment,
            # A file, not a pipe: a pipe nobody reads fills up and blocks the worker on its next log line.
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def logs(self) -> str:
        """Everything the workers printed (shown when a test using them fails)."""
        texts = []
        for log in self.logs_files:
            log.seek(0)
            texts.append(log.read().decode(errors="replace"))
        return "\n".join(texts)

    def stop_all(self):
        import subprocess

        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def workers(request):
    running = WorkerProcesses()
    yield running
    running.stop_all()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print("--- the workers' output ---\n" + running.logs()[-20000:])
    for log in running.logs_files:
        log.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item (`rep_call`), for fixtures that show more on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# --- The live server --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def live_server(live_server):
    """pytest-django's live server, answering without a 40 ms pause per request: Django's server writes the
    status line, the headers and the body in separate small sends, and without TCP_NODELAY on the connection
    the second waits for the client's delayed ACK (/healthz: 43 ms -> 3 ms)."""
    import socket

    httpd = live_server.thread.httpd
    accept = httpd.get_request

    def get_request():
        connection, address = accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    httpd.get_request = get_request
    return live_server


# --- Figures a test reports ------------------------------------------------------------------------

FIGURES = "figures"


def pytest_terminal_summary(terminalreporter):
    """Lines a test recorded with `record_property("figures", text)` (how many operations, examples,
    failures by kind...), printed at the end of the run whether the test passed or failed: `make test` and CI
    show them. They travel on the test's report, so they reach the summary from pytest-xdist's workers too."""
    lines = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.getreports(outcome):
            if report.when == "call":
                lines += [str(value) for name, value in report.user_properties if name == FIGURES]
    lines += hypothesis_figures(terminalreporter)
    if lines:
        terminalreporter.write_sep("=", "figures")
        for text in lines:
            for line in text.splitlines():
                terminalreporter.write_line(line)


def hypothesis_figures(terminalreporter) -> list[str]:
    """One line per property test: the test cases hypothesis ran (its plugin keeps them on the teardown's
    report, from xdist's workers too; `--hypothesis-show-statistics` would print them at length)."""
    lines = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            stats = getattr(report, "__dict__", {}).get("_hypothesis_stats")
            if not stats:
                continue
            counts = re.findall(r"(\d+) passing, (\d+) failing, and (\d+) invalid", stats)
            seconds = sum(float(s) for s in re.findall(r"phase \(([\d.]+) seconds\)", stats))
            passing, failing, invalid = (sum(int(c[i]) for c in counts) for i in range(3))
            name = report.nodeid.split("::", 1)[-1]
            lines.append(
                f"hypothesis: {name}: {passing} passing, {failing} failing, {invalid} invalid test cases "
                f"in {seconds:.1f} s"
            )
    return sorted(lines)


# --- Outgoing webhooks ----------------------------------------------------------------------------


@pytest.fixture
def subscriber(settings):
    """A real HTTP subscriber on 127.0.0.1 (tests/subscriber.py). Retries are due at once, so a test runs
    them without waiting; a delivery is dead after 4 attempts."""
    from tests.subscriber import Subscriber

    settings.WEBHOOK_RETRY_BASE_SECONDS = 0
    settings.WEBHOOK_MAX_ATTEMPTS = 4
    running = Subscriber()
    yield running
    running.close()


@pytest.fixture
def endpoint(subscriber):
    """`subscriber` registered for every event type, knowing its signing secret."""
    from kiosk.events.models import WebhookEndpoint

    hook = WebhookEndpoint.objects.create(url=subscriber.url, events=["*"], description="fiscal printer")
    subscriber.secret = hook.secret
    return hook
