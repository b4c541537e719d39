"""`make bench`: throughput of the paths a lunch rush exercises, as ratios to `GET /healthz` in the same run.

What it does, all on this machine and stopped at the end:
- a database: MariaDB on 127.0.0.1:3306 (a fresh `kiosk_bench` database made as root through TCP), or the
  server of BENCH_DATABASE_URL (its database is emptied and migrated: give it a throw-away one). Without a
  MariaDB/MySQL answering it says so and uses SQLite, whose figures are not comparable;
- the demo menu (11 products), a backlog of 500 active orders in Loja Centro's kitchen, a pending QR to poll;
- the app as in production: gunicorn with the project's gunicorn.conf.py (2 workers x 4 threads unless
  GUNICORN_WORKERS / GUNICORN_THREADS say otherwise), DEBUG off, simulator mode, and `run_worker`;
- load from another process: wrk (Debian's package; `apt-get install wrk`), 16 connections, BENCH_SECONDS
  (8) per row; the kiosk journey (order, checkout, pay, notification, poll until received) from a pool of
  processes, as journeys per second;
- per row: requests/s, ratio to /healthz, p50/p95/p99, errors (non-2xx/3xx and socket errors), database
  queries per request (django-prometheus's counters, read from /metrics) and the gunicorn workers' RSS before
  and after;
- then checks that no order was paid twice, no notification applied twice, and every journey's order was
  received, and exits non-zero if not.
Figures are for comparing changes on the same machine, in the same run; docs/benchmarks.md keeps some.
"""

import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("BENCH_PORT", "8765"))
BASE = f"http://127.0.0.1:{PORT}"
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
JOURNEY_CLIENTS = int(os.environ.get("BENCH_JOURNEY_CLIENTS", "8"))
BACKLOG = int(os.environ.get("BENCH_BACKLOG", "500"))
BIG_MENU = int(os.environ.get("BENCH_BIG_MENU", "200"))
WEBHOOK_SECRET = uuid.uuid4().hex
METRICS_TOKEN = uuid.uuid4().hex

# wrk's Lua: one fresh Idempotency-Key per request where asked, and a summary line we parse.
LUA = r"""
local made = 0
function setup(thread)
  made = made + 1
  thread:set("tid", made)
end
local counter = 0
function request()
  if FRESH_KEY then
    counter = counter + 1
    wrk.headers["Idempotency-Key"] = RUN .. "-" .. tid .. "-" .. counter
  end
  return wrk.format()
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"socket_errors":%d,"status_errors":%d,"p50":%d,"p95":%d,"p99":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def mariadb_answers() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", 3306)) == 0


def bench_database(workdir: Path, name: str = "kiosk_bench", variable: str = "BENCH_DATABASE_URL") -> tuple[str, str]:
    """(DATABASE_URL, label): the server `variable` names, else a fresh database `name` on the local MariaDB."""
    wanted = os.environ.get(variable)
    if wanted:
        return wanted, variable
    if mariadb_answers():
        import MySQLdb

        connection = MySQLdb.connect(host="127.0.0.1", port=3306, user="root")
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            cursor.execute("SELECT VERSION()")
            version = cursor.fetchone()[0]
            cursor.execute("SELECT COUNT(*) FROM mysql.time_zone_name")
            has_zones = cursor.fetchone()[0] > 0
        connection.close()
        if not has_zones:  # dates in the store's zone need them (as .ci/run loads them)
            load_time_zones()
        return f"mysql://root@127.0.0.1:3306/{name}", f"MariaDB/MySQL {version}"
    print("!! no MariaDB/MySQL on 127.0.0.1:3306: SQLite, figures not comparable with production", file=sys.stderr)
    return f"sqlite:///{workdir / 'bench.sqlite3'}", "SQLite"


def load_time_zones() -> None:
    print("loading MariaDB's time zone tables (once per server)")
    to_sql = shutil.which("mariadb-tzinfo-to-sql") or shutil.which("mysql_tzinfo_to_sql")
    client = shutil.which("mariadb") or shutil.which("mysql")
    if not (to_sql and client):
        raise SystemExit("MariaDB has no time zone tables and no mariadb-tzinfo-to-sql here to load them")
    zones = subprocess.run([to_sql, "/usr/share/zoneinfo"], capture_output=True, check=True).stdout
    subprocess.run([client, "-uroot", "-h127.0.0.1", "mysql"], input=zones, check=True)


class App:
    """gunicorn (production settings) and the worker, restartable with other gunicorn settings."""

    def __init__(self, env: dict, workdir: Path):
        self.env, self.workdir, self.server, self.worker = env, workdir, None, None

    def start(self, **gunicorn_env):
        # Each gunicorn worker's counters, summed by /metrics (gunicorn.conf.py empties the folder at start).
        env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prometheus"), **gunicorn_env}
        log = open(self.workdir / "gunicorn.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "kiosk.wsgi", "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        if self.worker is None:
            self.worker = subprocess.Popen(
                [sys.executable, "manage.py", "run_worker", "--no-reload", "--interval", "0.05", "--verbosity", "0"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
            )
        for _ in range(150):
            try:
                if requests.get(f"{BASE}/healthz", timeout=1).ok:
                    time.sleep(0.5)  # every worker booted
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise SystemExit(f"gunicorn did not start; see {self.workdir / 'gunicorn.log'}")

    def stop_server(self):
        if self.server is not None:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(timeout=30)
            self.server = None

    def stop(self):
        self.stop_server()
        if self.worker is not None:
            self.worker.send_signal(signal.SIGTERM)
            self.worker.wait(timeout=30)
            self.worker = None

    def worker_rss_mb(self) -> list[float]:
        """RSS of each gunicorn worker (the master's children)."""
        return sorted(self.worker_rss_by_pid().values())

    def worker_rss_by_pid(self) -> dict[int, float]:
        """{pid: RSS in MB} of each gunicorn worker (the master's children)."""
        sizes = {}
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            ppid = re.search(r"^PPid:\s+(\d+)", text, re.M)
            rss = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
            if ppid and rss and self.server and int(ppid.group(1)) == self.server.pid:
                sizes[int(status.parent.name)] = int(rss.group(1)) / 1024
        return sizes


def db_queries() -> float:
    """Queries the web workers have run so far (django-prometheus, summed over processes and databases)."""
    text = requests.get(f"{BASE}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(("django_db_execute_total{", "django_db_execute_many_total{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wrk(workdir: Path, path: str, *, method="GET", headers=None, body=None, fresh_key=False) -> dict:
    lua = workdir / "bench.lua"
    setup = [f'RUN = "{uuid.uuid4().hex[:12]}"', f"FRESH_KEY = {'true' if fresh_key else 'false'}"]
    setup.append(f'wrk.method = "{method}"')
    if body is not None:
        setup.append(f"wrk.body = {json.dumps(json.dumps(body))}")
        setup.append('wrk.headers["Content-Type"] = "application/json"')
    for name, value in (headers or {}).items():
        setup.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    lua.write_text("\n".join(setup) + "\n" + LUA)
    command = [
        "wrk",
        "-t2",
        f"-c{CONNECTIONS}",
        f"-d{round(SECONDS)}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        BASE + path,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"wrk failed: {done.stderr or done.stdout}")
    out = done.stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    figures = json.loads(line.removeprefix("BENCH "))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    figures["errors"] = figures["socket_errors"] + figures["status_errors"]
    return figures


class Table:
    def __init__(self, app: App):
        self.app, self.rows, self.baseline = app, [], None
        print(
            f"{'path':<50} {'req/s':>8} {'ratio':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} "
            f"{'q/req':>6}  worker RSS MB before -> after\n(errors: answers other than 2xx/3xx + sockets closed or timed out)"
        )

    def measure(self, name: str, run, *, target: float | None = None, baseline: bool = False) -> dict:
        rss_before, queries_before = self.app.worker_rss_mb(), db_queries()
        figures = run()
        queries = db_queries() - queries_before - 0  # the /metrics scrape's own queries count in; negligible
        figures["queries_per_request"] = queries / max(figures["requests"], 1)
        figures["rss"] = (rss_before, self.app.worker_rss_mb())
        if self.baseline is None or baseline:
            self.baseline = figures["rps"]
        figures["ratio"] = figures["rps"] / self.baseline
        figures["name"], figures["target"] = name, target
        self.rows.append(figures)
        verdict = "" if target is None else ("  ok" if figures["ratio"] >= target else f"  MISSED (>= {target})")
        errors = f"{figures.get('status_errors', figures['errors'])}+{figures.get('socket_errors', 0)}"
        rss = " ".join(f"{b:.0f}->{a:.0f}" for b, a in zip(*figures["rss"], strict=False))
        print(
            f"{name:<50} {figures['rps']:8.1f} {figures['ratio']:6.3f} {figures['p50'] / 1000:7.1f} "
            f"{figures['p95'] / 1000:7.1f} {figures['p99'] / 1000:7.1f} {errors:>6} "
            f"{figures['queries_per_request']:6.1f}  {rss}{verdict}",
            flush=True,
        )
        return figures


# --- Fixtures, made with the ORM in this process (same settings as the app) ---------------------------


def django_setup(env: dict):
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiosk.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def make_backlog(count: int) -> None:
    """`count` paid, unfinished orders of 3 lines each in Loja Centro, numbered after today's last number."""
    import datetime
    import random
    from decimal import Decimal

    from django.db import transaction
    from django.utils import timezone

    from orders.models import Order, OrderItem, PickupCounter, Product, Store, Terminal
    from orders.services import store_business_date

    store = Store.objects.get(slug="loja-centro")
    terminal = Terminal.objects.filter(store=store).first()
    products = list(Product.objects.filter(kind="item", active=True)[:6])
    today = store_business_date(store)
    statuses = [Order.Status.RECEIVED, Order.Status.IN_PREPARATION, Order.Status.READY]
    with transaction.atomic():
        counter = PickupCounter.objects.select_for_update().get(store=store)
        if counter.day != today:
            counter.day, counter.last_number = today, 0
        first = counter.last_number + 1
        counter.last_number += count
        counter.save()
        now = timezone.now()
        orders, items = [], []
        for i in range(count):
            status = statuses[i % 3]
            placed = now - datetime.timedelta(minutes=30) + datetime.timedelta(seconds=i)
            lines = [
                OrderItem(product=p, product_name=p.name, unit_price=p.price, quantity=1, line_total=p.price)
                for p in random.sample(products, 3)
            ]
            order = Order(
                business_date=today,
                number=first + i,
                store=store,
                terminal=terminal,
                dining=Order.Dining.TAKEAWAY,
                status=status,
                total=sum((line.line_total for line in lines), Decimal("0.00")),
                received_at=placed,
                in_preparation_at=placed if status != Order.Status.RECEIVED else None,
                ready_at=placed if status == Order.Status.READY else None,
            )
            for line in lines:
                line.order = order
            orders.append(order)
            items.extend(lines)
        Order.objects.bulk_create(orders)
        OrderItem.objects.bulk_create(items)


def grow_menu(to: int) -> int:
    """Adds plain products until the menu has `to`; returns how many it has."""
    from decimal import Decimal

    from orders.models import Category, Product

    categories = list(Category.objects.all())
    have = Product.objects.filter(active=True).count()
    Product.objects.bulk_create(
        Product(
            category=categories[i % len(categories)],
            name=f"Produto {i:03d}",
            description="Um produto a mais no cardápio do benchmark.",
            price=Decimal("9.90") + i,
        )
        for i in range(max(0, to - have))
    )
    return Product.objects.filter(active=True).count()


def integrity_problems(journey_orders: list[str]) -> list[str]:
    from django.db.models import Count

    from kiosk.events.models import Event
    from orders.models import Order
    from payments.models import Payment, PaymentEvent

    problems = []
    twice = Payment.objects.filter(status=Payment.Status.APPROVED).values("order").annotate(n=Count("id"))
    twice = [row for row in twice if row["n"] > 1]
    if twice:
        problems.append(f"{len(twice)} order(s) paid by more than one payment")
    paid_events = Event.objects.filter(type="order.paid").values("order_id").annotate(n=Count("id"))
    if any(row["n"] > 1 for row in paid_events):
        problems.append("order.paid emitted twice for an order")
    applied = (
        PaymentEvent.objects.filter(type=PaymentEvent.Type.STATUS_CHANGED, to_status=Payment.Status.APPROVED)
        .values("payment")
        .annotate(n=Count("id"))
    )
    if any(row["n"] > 1 for row in applied):
        problems.append("a payment approved twice (a notification applied twice)")
    received = Order.objects.filter(pk__in=journey_orders).exclude(status=Order.Status.AWAITING_PAYMENT).count()
    if received != len(journey_orders):
        problems.append(f"{len(journey_orders) - received} journey order(s) never received")
    return problems


# --- The kiosk journey, from other processes --------------------------------------------------------


def journey_client(args) -> dict:
    """Orders, checks out, pays through the simulator and polls until the order is received, for `seconds`."""
    token, body, seconds = args
    session = requests.Session()
    kiosk = {"Authorization": f"Bearer {token}"}
    done, errors, durations, orders, samples = 0, 0, [], [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            placed = session.post(
                f"{BASE}/api/v1/orders/", json=body, headers={**kiosk, "Idempotency-Key": uuid.uuid4().hex}, timeout=10
            )
            placed.raise_for_status()
            order_id = placed.json()["id"]
            orders.append(order_id)
            paying = session.post(
                f"{BASE}/api/v1/orders/{order_id}/checkout/",
                headers={**kiosk, "Idempotency-Key": uuid.uuid4().hex},
                timeout=10,
            )
            paying.raise_for_status()
            mp_order = paying.json()["payment"]["provider_order_id"]
            session.post(
                f"{BASE}/mp-simulator/v1/orders/{mp_order}/simulate", json={"outcome": "approved"}, timeout=10
            ).raise_for_status()
            while True:
                poll = session.get(f"{BASE}/api/v1/orders/{order_id}/payment/", headers=kiosk, timeout=10)
                poll.raise_for_status()
                if poll.json()["order"]["status"] == "received":
                    break
                if time.perf_counter() - start > 15:
                    raise TimeoutError(order_id)
                time.sleep(0.05)
            done += 1
            durations.append(time.perf_counter() - start)
        except (requests.RequestException, TimeoutError, KeyError) as error:
            errors += 1
            if len(samples) < 3:
                samples.append(f"{type(error).__name__}: {error}"[:300])
    return {"done": done, "errors": errors, "durations": durations, "orders": orders, "samples": samples}


def journeys(token: str, body: dict, seconds: float = SECONDS) -> tuple[dict, list[str]]:
    """JOURNEY_CLIENTS processes doing kiosk journeys for `seconds`: (figures, the orders they placed)."""
    started = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(JOURNEY_CLIENTS) as pool:
        results = list(pool.map(journey_client, [(token, body, seconds)] * JOURNEY_CLIENTS))
    elapsed = time.perf_counter() - started
    durations = sorted(d for r in results for d in r["durations"]) or [0.0]

    def pct(p):
        return durations[min(len(durations) - 1, int(len(durations) * p / 100))] * 1e6

    figures = {
        "requests": sum(r["done"] for r in results),
        "duration_us": elapsed * 1e6,
        "errors": sum(r["errors"] for r in results),
        "p50": statistics.median(durations) * 1e6,
        "p95": pct(95),
        "p99": pct(99),
        "error_samples": [sample for r in results for sample in r["samples"]][:5],
    }
    figures["rps"] = figures["requests"] / elapsed
    return figures, [o for r in results for o in r["orders"]]


# --- The run ----------------------------------------------------------------------------------------


def sign(data_id: str, request_id: str, ts: str) -> str:
    manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"  # as Mercado Pago signs
    return f"ts={ts},v1={hmac.new(WEBHOOK_SECRET.encode(), manifest.encode(), hashlib.sha256).hexdigest()}"


def prepare(workdir: Path, *, database: str = "kiosk_bench", variable: str = "BENCH_DATABASE_URL", **settings):
    """The database (migrated, the demo data, a backlog of BACKLOG orders) and the app's environment, production
    settings plus `settings`; Django set up in this process. Answers (environment, the database's label)."""
    database_url, label = bench_database(workdir, database, variable)
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "DATABASE_URL": database_url,
        "SITE_URL": BASE,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "GUNICORN_LOG_LEVEL": "warning",
        "GUNICORN_BIND": "127.0.0.1",
        "PORT": str(PORT),
        "SECURE_COOKIES": "false",
        "METRICS_TOKEN": METRICS_TOKEN,
        "MERCADOPAGO_SIMULATOR": "true",
        # Notifications leave at once (Mercado Pago's leave ~1 s later): the journey measures this back end.
        "MERCADOPAGO_SIMULATOR_NOTIFY_DELAY": "0",
        "MERCADOPAGO_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MERCADOPAGO_SIGNATURE_TOLERANCE": "0",
        **settings,
    }
    for name in ("MERCADOPAGO_ACCESS_TOKEN", "CACHE_URL"):
        env.pop(name, None)
    env.setdefault("GUNICORN_WORKERS", "2")
    env.setdefault("GUNICORN_THREADS", "4")
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([python, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "seed_demo", "--force"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )
    django_setup(env)
    make_backlog(BACKLOG)
    return env, label


def journey_body(session: requests.Session, kiosk: dict) -> tuple[list, dict]:
    """(the kiosk's menu, an order of three unlimited products that need no choices)."""
    products = session.get(f"{BASE}/api/v1/products/", headers=kiosk, timeout=10).json()
    plain = [
        p["id"]
        for p in products
        if p["stock"] is None and p["kind"] == "item" and not any(g["min_choices"] for g in p["option_groups"])
    ][:3]
    return products, {"dining": "takeaway", "items": [{"product_id": pid, "quantity": 1} for pid in plain]}


def main() -> int:
    if shutil.which("wrk") is None:
        print("make bench needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    env, database = prepare(workdir)
    app = App(env, workdir)
    started = time.perf_counter()
    try:
        app.start()
        return run(app, workdir, database, env)
    finally:
        app.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"(bench took {time.perf_counter() - started:.0f} s)")


def run(app: App, workdir: Path, database: str, env: dict) -> int:
    session = requests.Session()

    def token(user):
        answer = session.post(f"{BASE}/api/v1/auth/token/", json={"username": user, "password": user}, timeout=10)
        return answer.json()["access"]

    kiosk_token, kitchen_token = token("kiosk1"), token("kitchen1")
    kiosk = {"Authorization": f"Bearer {kiosk_token}"}
    kitchen = {"Authorization": f"Bearer {kitchen_token}"}
    products, body = journey_body(session, kiosk)

    # An order with an open QR, polled as a kiosk polls it.
    order = session.post(
        f"{BASE}/api/v1/orders/", json=body, headers={**kiosk, "Idempotency-Key": uuid.uuid4().hex}, timeout=10
    ).json()
    session.post(
        f"{BASE}/api/v1/orders/{order['id']}/checkout/",
        headers={**kiosk, "Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    ).raise_for_status()
    # A paid order whose notification Mercado Pago sends again and again (same x-request-id: a duplicate).
    paid = session.post(
        f"{BASE}/api/v1/orders/", json=body, headers={**kiosk, "Idempotency-Key": uuid.uuid4().hex}, timeout=10
    ).json()
    mp_order = session.post(
        f"{BASE}/api/v1/orders/{paid['id']}/checkout/",
        headers={**kiosk, "Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    ).json()["payment"]["provider_order_id"]
    session.post(f"{BASE}/mp-simulator/v1/orders/{mp_order}/simulate", json={"outcome": "approved"}, timeout=10)
    request_id, ts = uuid.uuid4().hex, str(int(time.time()))
    notification = {
        "path": f"/api/v1/webhooks/mercadopago/?data.id={mp_order}&type=order",
        "body": {"action": "order.processed", "type": "order", "data": {"id": mp_order}},
        "headers": {"x-request-id": request_id, "x-signature": sign(mp_order, request_id, ts)},
    }
    session.post(BASE + notification["path"], json=notification["body"], headers=notification["headers"], timeout=10)
    kitchen_etag = session.get(f"{BASE}/api/v1/kitchen/orders/", headers=kitchen, timeout=30).headers.get("ETag")
    menu_etag = session.get(f"{BASE}/api/v1/products/", headers=kiosk, timeout=10).headers.get("ETag")

    workers, threads = env["GUNICORN_WORKERS"], env["GUNICORN_THREADS"]
    print(
        f"kiosk back end benchmark: {database}, gunicorn {workers} workers x {threads} threads (gunicorn.conf.py), "
        f"wrk -c{CONNECTIONS} {SECONDS:g} s per row, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
    )
    table = Table(app)
    table.measure("GET /healthz (baseline)", lambda: wrk(workdir, "/healthz"))
    table.measure(
        f"menu GET /products/ ({len(products)} products)",
        lambda: wrk(workdir, "/api/v1/products/", headers=kiosk),
        target=0.5,
    )
    if menu_etag:
        table.measure(
            "menu, If-None-Match (304)",
            lambda: wrk(workdir, "/api/v1/products/", headers={**kiosk, "If-None-Match": menu_etag}),
        )
    table.measure(
        "place order (3 items, fresh Idempotency-Key)",
        lambda: wrk(workdir, "/api/v1/orders/", method="POST", headers=kiosk, body=body, fresh_key=True),
        target=0.15,
    )
    table.measure(
        "payment poll GET /orders/<id>/payment/",
        lambda: wrk(workdir, f"/api/v1/orders/{order['id']}/payment/", headers=kiosk),
        target=0.5,
    )
    table.measure(
        "signed notification (duplicate)",
        lambda: wrk(
            workdir, notification["path"], method="POST", headers=notification["headers"], body=notification["body"]
        ),
        target=0.3,
    )
    table.measure(
        f"kitchen queue ({BACKLOG} active orders)",
        lambda: wrk(workdir, "/api/v1/kitchen/orders/", headers=kitchen),
        target=0.2,
    )
    if kitchen_etag:
        table.measure(
            "kitchen queue, nothing changed (If-None-Match)",
            lambda: wrk(workdir, "/api/v1/kitchen/orders/", headers={**kitchen, "If-None-Match": kitchen_etag}),
            target=0.5,
        )
    journey_figures, journey_orders = None, []

    def run_journeys():
        nonlocal journey_figures, journey_orders
        journey_figures, journey_orders = journeys(kiosk_token, body)
        return journey_figures

    table.measure(f"kiosk journeys/s ({JOURNEY_CLIENTS} kiosks: order..received)", run_journeys)
    size = grow_menu(BIG_MENU)
    table.measure(
        f"menu GET /products/ ({size} products)", lambda: wrk(workdir, "/api/v1/products/", headers=kiosk), target=0.5
    )

    # Threads must never be slower than sync workers: the same order row with 1 thread per worker.
    threaded = next(r for r in table.rows if r["name"].startswith("place order"))
    app.stop_server()
    app.start(GUNICORN_THREADS="1")
    table.measure("GET /healthz (1 thread per worker)", lambda: wrk(workdir, "/healthz"), baseline=True)
    sync = table.measure(
        "place order, 1 thread per worker",
        lambda: wrk(workdir, "/api/v1/orders/", method="POST", headers=kiosk, body=body, fresh_key=True),
    )
    print(
        f"place order: {threads} threads {threaded['rps']:.1f}/s vs 1 thread {sync['rps']:.1f}/s "
        f"({'ok' if threaded['rps'] >= 0.95 * sync['rps'] else 'threads SLOWER'})"
    )

    problems = integrity_problems(journey_orders)
    errors = sum(r["errors"] for r in table.rows)
    print(f"journeys: {journey_figures['requests']} received, {len(journey_orders)} placed; integrity: ", end="")
    print("ok (no order paid twice, no notification applied twice)" if not problems else "; ".join(problems))
    missed = [r["name"] for r in table.rows if r["target"] is not None and r["ratio"] < r["target"]]
    print(f"targets missed: {', '.join(missed) if missed else 'none'}; errors: {errors}")
    return 1 if problems or errors else 0


if __name__ == "__main__":
    sys.exit(main())
