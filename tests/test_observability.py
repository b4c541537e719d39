"""What an operator watches: /metrics for Prometheus (behind a bearer token) and JSON log lines that never
carry personal data or credentials."""

import json
import logging
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from tests.conftest import new_key, place
from tests.servers import production_gunicorn

BASE = Path(__file__).resolve().parent.parent
TOKEN = "m" * 40


def scrape(client: Client, token: str | None = TOKEN) -> dict[str, float]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    answer = client.get("/metrics", **headers)
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("text/plain")
    return parse(answer.content.decode())


def parse(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.DEBUG = False


def test_metrics_are_off_in_production_without_a_token(db, settings):
    settings.DEBUG, settings.METRICS_TOKEN = False, ""
    assert Client().get("/metrics").status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_metrics_want_the_bearer_token(metrics_on, db, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    answer = Client().get("/metrics", **headers)
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Bearer")
    assert b"kiosk_" not in answer.content


def test_metrics_count_requests_by_route_and_status_and_database_queries(
    metrics_on, kiosk, menu, django_capture_on_commit_callbacks
):
    before = scrape(Client())
    with django_capture_on_commit_callbacks(execute=True):
        place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}])
    kiosk.get("/api/v1/orders/00000000-0000-0000-0000-000000000000/")
    after = scrape(Client())

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert (
        grew('django_http_responses_total_by_status_view_method_total{method="POST",status="201",view="order-list"}')
        == 1
    )
    assert (
        grew('django_http_responses_total_by_status_view_method_total{method="GET",status="404",view="order-detail"}')
        == 1
    )
    assert grew('django_http_requests_latency_seconds_by_view_method_count{method="POST",view="order-list"}') == 1
    assert grew("kiosk_orders_placed_total") == 1
    executed = [name for name in after if name.startswith("django_db_execute_total")]
    assert executed and sum(grew(name) for name in executed) > 3


def test_business_gauges_come_from_the_database(metrics_on, kiosk, order, mercadopago):
    from django_tasks.base import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from kiosk.events.models import EventDelivery
    from payments.models import Payment, WebhookDelivery

    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    Payment.objects.filter(pk=payment["id"]).update(needs_review=True)
    stored = WebhookDelivery.objects.create(status=WebhookDelivery.Status.PROCESSED)
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=stored.pk).update(received_at=now - timedelta(seconds=3), processed_at=now)
    DBTaskResult.objects.filter(pk__in=list(DBTaskResult.objects.values_list("pk", flat=True)[:1])).update(
        status=TaskResultStatus.FAILED
    )
    samples = scrape(Client())

    assert samples['kiosk_orders_last_24h{status="awaiting_payment"}'] == 1
    assert samples['kiosk_orders_last_24h{status="received"}'] == 0  # every status is there, also at 0
    assert samples['kiosk_payments_last_24h{status="pending"}'] == 1
    assert samples["kiosk_review_queue_size"] == 1
    assert samples['kiosk_notification_apply_lag_seconds{quantile="1"}'] == pytest.approx(3, abs=0.01)
    dead = DBTaskResult.objects.filter(status=TaskResultStatus.FAILED).count()
    assert samples["kiosk_tasks_dead"] == dead
    queued = DBTaskResult.objects.filter(status=TaskResultStatus.READY).count()
    assert samples['kiosk_tasks_queued{status="READY"}'] == queued
    assert samples["kiosk_webhook_deliveries_dead"] == EventDelivery.objects.filter(status="dead").count()
    assert samples["kiosk_mercadopago_circuit_breaker_state"] == 0
    assert samples["kiosk_database_scrape_ok"] == 1
    create = 'kiosk_mercadopago_call_seconds_count{operation="create_qr_order",outcome="ok"}'
    assert samples.get(create, 0) >= 1


def test_metrics_still_answer_when_the_database_does_not(metrics_on, db, monkeypatch):
    from kiosk import metrics

    def down(self):
        raise OperationalError("(2006, 'MySQL server has gone away')")

    monkeypatch.setattr(metrics.DatabaseCollector, "collect", down)
    samples = scrape(Client())
    assert samples["kiosk_database_scrape_ok"] == 0
    assert "kiosk_review_queue_size" not in samples


# --- Logs -------------------------------------------------------------------------------------------


def _json_lines(record_logs) -> list[dict]:
    return [json.loads(line) for line in record_logs.splitlines() if line.startswith("{")]


def test_log_lines_are_json_with_request_id_and_route_and_no_personal_data(settings, kiosk, menu):
    from kiosk.logging import JsonFormatter, MaskPIIFilter, RequestIdFilter

    stream = __import__("io").StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(route)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(RequestIdFilter())
    handler.addFilter(MaskPIIFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        answer = place(
            kiosk,
            [{"product_id": menu["burger"].pk, "quantity": 1}],
            customer_cpf="529.982.247-25",
        )
        assert answer.status_code == 201
        order_id = answer.json()["id"]
        kiosk.get(f"/api/v1/orders/{order_id}/", HTTP_X_REQUEST_ID="trace-me-1")
        kiosk.get("/api/v1/orders/00000000-0000-0000-0000-000000000000/?cpf=52998224725", HTTP_X_REQUEST_ID="lost-1")
        logging.getLogger("kiosk.test").warning(
            "customer 52998224725 maria@example.com sent Authorization: Bearer abc.def.ghijklmnop token "
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl and APP_USR-1234567890123456-abcdef"
        )
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    lines = _json_lines(text)
    placed = [line for line in lines if line["message"].startswith("order placed")]
    assert placed, text
    assert {"time", "level", "logger", "message", "request_id", "route"} <= set(placed[0])
    assert placed[0]["route"] == "order-list" and placed[0]["request_id"] not in {"", "-"}
    not_found = [line for line in lines if line.get("request_id") == "lost-1"]
    assert not_found and not_found[0]["route"] == "order-detail" and "request" not in not_found[0]
    for forbidden in ("52998224725", "529.982.247-25", "maria@example.com", "abc.def.ghijklmnop", "c2lnbmF0dXJl"):
        assert forbidden not in text
    assert "1234567890123456" not in text


def test_the_production_settings_log_json(tmp_path):
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "x" * 50,
        "MERCADOPAGO_SIMULATOR": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    env.pop("LOG_FORMAT", None)
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('kiosk.check').warning('hello %s', 'maria@example.com')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE,
        env={**env, "DJANGO_SETTINGS_MODULE": "kiosk.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["level"] == "WARNING" and line["logger"] == "kiosk.check"
    assert line["message"] == "hello m***@example.com"
    assert "T" in line["time"]


# --- Under gunicorn: several worker processes, one set of figures ---------------------------------------


def test_under_gunicorn_the_workers_counters_add_up_and_the_access_log_names_the_route(tmp_path):
    with production_gunicorn(tmp_path, METRICS_TOKEN=TOKEN, GUNICORN_WORKERS="3", GUNICORN_THREADS="1") as url:
        with requests.Session() as session:
            for _ in range(30):
                assert session.get(f"{url}/healthz", timeout=5).status_code == 200
        # Every scrape, whichever worker answers it, sees the requests of all of them.
        name = 'django_http_responses_total_by_status_view_method_total{method="GET",status="200",view="healthz"}'
        seen = [
            parse(requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).text).get(
                name
            )
            for _ in range(4)
        ]
    text = (tmp_path / "gunicorn.log").read_text()
    assert all(value is not None and value >= 31 for value in seen), (seen, text[-2000:])
    access = [
        json.loads(line) for line in text.splitlines() if line.startswith('{"time"') and "gunicorn.access" in line
    ]
    metrics_lines = [line for line in access if line["path"] == "/metrics"]
    assert metrics_lines and metrics_lines[0]["route"] == "metrics" and metrics_lines[0]["status"] == 200


# --- Throttling ----------------------------------------------------------------------------------------


def test_the_pickup_board_is_throttled_per_client_address(db, monkeypatch):
    from kiosk.api import PickupBoardThrottle

    monkeypatch.setattr(PickupBoardThrottle, "rate", "3/min", raising=False)
    tv, other_tv = Client(REMOTE_ADDR="203.0.113.7"), Client(REMOTE_ADDR="203.0.113.8")
    assert [tv.get("/api/v1/pickup-board/").status_code for _ in range(3)] == [200, 200, 200]
    refused = tv.get("/api/v1/pickup-board/")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "throttled" and int(refused["Retry-After"]) > 0
    assert other_tv.get("/api/v1/pickup-board/").status_code == 200


def test_cpf_lookups_are_throttled_per_terminal(kiosk, other_terminal, monkeypatch):
    from kiosk.api import CPFLookupThrottle
    from orders.models import Customer
    from tests.conftest import client_for

    monkeypatch.setattr(CPFLookupThrottle, "rate", "2/min", raising=False)
    codes = [kiosk.get(f"/api/v1/customers/?cpf={cpf}").status_code for cpf in ("52998224725", "11144477735")]
    assert codes == [404, 404]
    refused = kiosk.post("/api/v1/customers/", {"cpf": "52998224725"}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "throttled" and refused["Retry-After"]
    assert not Customer.objects.exists()  # refused before anything was written
    assert client_for(other_terminal.user).get("/api/v1/customers/?cpf=52998224725").status_code == 404


def test_with_redis_the_throttle_counters_are_shared_by_every_process(tmp_path):
    """Two processes, one Redis: the second sees what the first spent (skipped where no Redis answers)."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379 (CACHE_URL=redis://... is optional)")
    code = (
        "import django, sys; django.setup(); from django.test import Client; "
        "from kiosk.api import PickupBoardThrottle; PickupBoardThrottle.rate = '3/min'; "
        "print(' '.join(str(Client(REMOTE_ADDR=sys.argv[1]).get('/api/v1/pickup-board/').status_code) "
        "for _ in range(2)))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kiosk.settings",
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CACHE_URL": "redis://127.0.0.1:6379/15",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE, env=env, check=True, capture_output=True)
    address = f"198.51.100.{os.getpid() % 250}"
    first = subprocess.run([sys.executable, "-c", code, address], cwd=BASE, env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", code, address], cwd=BASE, env=env, capture_output=True, text=True)
    assert (first.stdout.split(), second.stdout.split()) == (["200", "200"], ["200", "429"]), first.stderr[-1500:]
