"""`make bench`: latency figures of the paths a kiosk and Mercado Pago exercise, on this machine.

Starts the app under gunicorn (2 workers, 4 threads each) and one background worker (`run_worker`) on a
throw-away SQLite database in simulator mode, drives it over real HTTP on 127.0.0.1, prints p50/p95/max per
step and stops everything. Every loop
is bounded in count and time. Figures are for comparing changes on the same machine, not promises.
"""

import hashlib
import hmac
import json
import os
import shutil
import signal
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
ORDERS = int(os.environ.get("BENCH_ORDERS", "200"))
PAYMENTS = int(os.environ.get("BENCH_PAYMENTS", "30"))
NOTIFICATIONS = int(os.environ.get("BENCH_NOTIFICATIONS", "200"))
WEBHOOK_SECRET = uuid.uuid4().hex


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"n={len(ms):4d}  p50={statistics.median(ms):7.1f} ms  p95={p95:7.1f} ms  max={ms[-1]:7.1f} ms"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "SITE_URL": BASE,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "SECURE_COOKIES": "false",
        "MERCADOPAGO_SIMULATOR": "true",
        # The simulator's notifications leave 1 s after a payment, as Mercado Pago's do; here they leave at
        # once, so that "paid -> kitchen" measures this back end, not the stand-in's clock.
        "MERCADOPAGO_SIMULATOR_NOTIFY_DELAY": "0",
        "MERCADOPAGO_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    env.pop("MERCADOPAGO_ACCESS_TOKEN", None)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([python, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "seed_demo", "--force"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )
    server = subprocess.Popen(
        [
            python,
            "-m",
            "gunicorn",
            "kiosk.wsgi",
            "-b",
            f"127.0.0.1:{PORT}",
            "-w",
            "2",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    # Applying notifications is the worker's job: without it nothing reaches the kitchen.
    worker = subprocess.Popen(
        [python, "manage.py", "run_worker", "--no-reload", "--interval", "0.05", "--verbosity", "0"],
        cwd=ROOT,
        env={**env, "LOG_LEVEL": "WARNING"},
    )
    try:
        for _ in range(100):
            try:
                if requests.get(f"{BASE}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            print("server did not start", file=sys.stderr)
            return 1
        return run()
    finally:
        for process in (server, worker):
            process.send_signal(signal.SIGTERM)
        for process in (server, worker):
            process.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)


def run() -> int:
    session = requests.Session()

    def token(user):
        return session.post(f"{BASE}/api/v1/auth/token/", json={"username": user, "password": user}, timeout=10).json()[
            "access"
        ]

    kiosk = {"Authorization": f"Bearer {token('kiosk1')}"}
    kitchen = {"Authorization": f"Bearer {token('kitchen1')}"}
    products = session.get(f"{BASE}/api/v1/products/", headers=kiosk, timeout=10).json()
    # Plain items (no combo, no required choice) with unlimited stock; Loja Centro wants eat-in or takeaway.
    unlimited = [
        p["id"]
        for p in products
        if p["stock"] is None and p["kind"] == "item" and not any(g["min_choices"] for g in p["option_groups"])
    ][:3]
    body = {"dining": "takeaway", "items": [{"product_id": pid, "quantity": 1} for pid in unlimited]}

    print(f"kiosk back end benchmark on {BASE} (gunicorn 2x4 and a worker, SQLite, simulator mode)")
    place, order_ids = [], []
    for _ in range(ORDERS):
        elapsed, response = timed(
            lambda: session.post(
                f"{BASE}/api/v1/orders/", json=body, headers={**kiosk, "Idempotency-Key": uuid.uuid4().hex}, timeout=10
            )
        )
        assert response.status_code == 201, response.text
        place.append(elapsed)
        order_ids.append(response.json()["id"])
    print(f"place order (POST /orders/)          {percentiles(place)}")

    replay = []
    key = uuid.uuid4().hex
    session.post(f"{BASE}/api/v1/orders/", json=body, headers={**kiosk, "Idempotency-Key": key}, timeout=10)
    for _ in range(min(ORDERS, 100)):
        elapsed, response = timed(
            lambda: session.post(
                f"{BASE}/api/v1/orders/", json=body, headers={**kiosk, "Idempotency-Key": key}, timeout=10
            )
        )
        assert response.headers.get("Idempotent-Replayed") == "true"
        replay.append(elapsed)
    print(f"idempotent replay                    {percentiles(replay)}")

    checkout, poll, to_kitchen = [], [], []
    for order_id in order_ids[:PAYMENTS]:
        elapsed, response = timed(
            lambda: session.post(
                f"{BASE}/api/v1/orders/{order_id}/checkout/",
                headers={**kiosk, "Idempotency-Key": uuid.uuid4().hex},
                timeout=10,
            )
        )
        assert response.status_code == 201, response.text
        checkout.append(elapsed)
        mp_order = response.json()["payment"]["provider_order_id"]
        paid_at = time.perf_counter()
        session.post(f"{BASE}/mp-simulator/v1/orders/{mp_order}/simulate", json={"outcome": "approved"}, timeout=10)
        deadline = paid_at + 10
        while time.perf_counter() < deadline:
            elapsed, response = timed(
                lambda: session.get(f"{BASE}/api/v1/orders/{order_id}/payment/", headers=kiosk, timeout=10)
            )
            poll.append(elapsed)
            if response.json()["payment"]["status"] == "approved":
                to_kitchen.append(time.perf_counter() - paid_at)
                break
            time.sleep(0.01)
    print(f"checkout (QR created via SDK)        {percentiles(checkout)}")
    print(f"poll payment status                  {percentiles(poll)}")
    print(f"paid -> kitchen (webhook, 0 s delay)  {percentiles(to_kitchen)}")

    # Mercado Pago's side of the notification URL: store, verify, enqueue, answer. It never waits on Mercado
    # Pago (the worker fetches and applies), so Mercado Pago's latency does not show here.
    paid_ids = [session.get(f"{BASE}/api/v1/orders/{o}/payment/", headers=kiosk, timeout=10).json() for o in order_ids]
    mp_ids = [p["payment"]["provider_order_id"] for p in paid_ids if p.get("payment")][:PAYMENTS]
    notified = []
    for i in range(NOTIFICATIONS):
        data_id, request_id, ts = mp_ids[i % len(mp_ids)], uuid.uuid4().hex, str(int(time.time()))
        manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"  # signed as Mercado Pago signs
        v1 = hmac.new(WEBHOOK_SECRET.encode(), manifest.encode(), hashlib.sha256).hexdigest()
        elapsed, response = timed(
            lambda: session.post(
                f"{BASE}/api/v1/webhooks/mercadopago/?data.id={data_id}&type=order",
                json={"action": "order.processed", "type": "order", "data": {"id": data_id}},
                headers={"x-request-id": request_id, "x-signature": f"ts={ts},v1={v1}"},
                timeout=10,
            )
        )
        assert response.status_code == 200, response.text
        notified.append(elapsed)
    print(f"notification URL (signed, duplicates) {percentiles(notified)}")

    queue = [
        timed(lambda: session.get(f"{BASE}/api/v1/kitchen/orders/", headers=kitchen, timeout=10))[0] for _ in range(50)
    ]
    print(f"kitchen queue ({len(to_kitchen)} paid orders)        {percentiles(queue)}")
    missing = PAYMENTS - len(to_kitchen)
    if missing:
        print(f"{missing} payment(s) did not reach the kitchen within 10 s", file=sys.stderr)
        return 1
    print(json.dumps({"orders": ORDERS, "payments": PAYMENTS, "notifications": NOTIFICATIONS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
