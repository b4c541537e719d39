"""Cross-cutting behaviour: JWT login, problem details, request ids, PII masking, health, the demo seed."""

import logging

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import OperationalError
from rest_framework.test import APIClient

from kiosk.logging import mask_pii
from kiosk.problems import exception_handler
from orders.models import Category, PickupCounter, Product, Terminal
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_jwt_login_refresh_and_use(terminal, menu):
    client = APIClient()
    response = client.post("/api/v1/auth/token/", {"username": "kiosk-a", "password": "kiosk-a"}, format="json")
    assert response.status_code == 200
    tokens = response.json()
    refreshed = client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200

    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert client.get("/api/v1/categories/").status_code == 200


def test_bad_credentials_and_garbage_tokens_are_401_problems(terminal):
    client = APIClient()
    response = client.post("/api/v1/auth/token/", {"username": "kiosk-a", "password": "wrong"}, format="json")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    response = client.get("/api/v1/categories/")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_a_user_without_a_role_is_refused(db):
    client = APIClient()
    client.force_authenticate(make_user("nobody"))
    response = client.get("/api/v1/categories/")
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


def test_lock_contention_is_a_retryable_503_not_a_500():
    exc = OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
    response = exception_handler(exc, {})
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.data["code"] == "busy_retry"


def test_request_id_is_echoed_or_made(kiosk):
    assert kiosk.get("/api/v1/categories/", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    made = kiosk.get("/api/v1/categories/", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert len(made) == 32 and " " not in made


def test_cpf_and_email_never_reach_the_logs(caplog):
    assert mask_pii("cliente 529.982.247-25 / 52998224725 maria.silva@example.com") == (
        "cliente ***.982.247-** / ***.982.247-** m***@example.com"
    )
    handler_filter = __import__("kiosk.logging", fromlist=["MaskPIIFilter"]).MaskPIIFilter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "identify %s", ("52998224725",), None)
    handler_filter.filter(record)
    assert record.getMessage() == "identify ***.982.247-**"


def test_ids_with_eleven_digits_in_a_row_stay_whole_in_the_logs():
    """A task or order id whose last part holds eleven digits is not a CPF: masking it garbled the id that an
    operator greps for (seen in CI: 'task d2a5c3a7-...-ab6b-***.279.088-**b')."""
    task_id, request_id = "d2a5c3a7-994f-4fd0-ab6b-89127908868b", "52998224725ab6b4fd0a634c02efc824"
    line = f"task {task_id} abandoned; request {request_id}; customer 52998224725 ({task_id})"
    assert mask_pii(line) == f"task {task_id} abandoned; request {request_id}; customer ***.982.247-** ({task_id})"
    assert mask_pii("cpf=52998224725&id=8f14e45f-ceea-467f-a0e6-52998224725a") == (
        "cpf=***.982.247-**&id=8f14e45f-ceea-467f-a0e6-52998224725a"
    )


def test_health_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok", "workers_alive": 0}


def test_readyz_counts_live_workers_and_can_require_one(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from kiosk.models import WorkerHeartbeat

    settings.READYZ_REQUIRE_WORKER = True
    stopped = client.get("/readyz")
    assert stopped.status_code == 503 and stopped.json()["code"] == "worker_not_running"
    long_ago = timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS + 1)
    WorkerHeartbeat.objects.create(worker_id="dead", hostname="h", pid=1, started_at=long_ago, seen_at=long_ago)
    assert client.get("/readyz").status_code == 503  # a killed worker's last beat does not count
    WorkerHeartbeat.objects.create(
        worker_id="alive", hostname="h", pid=2, started_at=timezone.now(), seen_at=timezone.now()
    )
    assert client.get("/readyz").json() == {"status": "ok", "workers_alive": 1}


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/orders/" in schema.content
    assert client.get("/api/docs/").status_code == 200


def test_seed_demo_is_repeatable_and_keeps_data(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    burger = Product.objects.get(name="X-Burger")
    burger.price = "99.00"
    burger.save()
    call_command("seed_demo")
    assert Product.objects.get(name="X-Burger").price == 99
    assert set(Category.objects.values_list("name", flat=True)) == {
        "Combos",
        "Lanche",
        "Acompanhamento",
        "Bebida",
        "Sobremesa",
    }
    terminal = Terminal.objects.get(external_pos_id="KIOSK001")
    assert terminal.user.username == "kiosk1"
    for username, group in (("kiosk1", "kiosk"), ("kitchen1", "kitchen"), ("manager1", "manager")):
        user = User.objects.get(username=username)
        assert user.check_password(username)
        assert list(user.groups.values_list("name", flat=True)) == [group]
    assert User.objects.get(username="manager1").is_staff
    assert User.objects.get(username="kitchen1").is_staff
    assert User.objects.get(username="admin").is_superuser


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("seed_demo")
    assert not User.objects.exists()


def test_migrations_create_roles_and_a_new_store_has_its_pickup_counter():
    from django.contrib.auth.models import Group

    from orders.models import Store

    assert set(Group.objects.values_list("name", flat=True)) >= {"kiosk", "kitchen", "manager"}
    assert Group.objects.get(name="manager").permissions.filter(codename="change_product").exists()
    store = Store.objects.create(name="Loja Nova", slug="loja-nova")
    assert PickupCounter.objects.filter(store=store, last_number=0).exists()


def test_a_real_server_without_a_token_refuses_to_run_the_simulator(settings):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 50, "DEBUG": "false", "DATABASE_URL": "sqlite:////tmp/x.db"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=settings.BASE_DIR,
    )
    assert result.returncode != 0
    assert "MERCADOPAGO_SIMULATOR=true" in result.stderr
    env["MERCADOPAGO_SIMULATOR"] = "true"
    assert (
        subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, check=False).returncode
        == 0
    )


# --- Time zone tables (MySQL/MariaDB) -------------------------------------------------------------


def test_without_time_zone_tables_readyz_and_the_system_check_fail_clearly(client, monkeypatch):
    from django.core.checks import run_checks

    from kiosk import checks

    monkeypatch.setattr(checks, "timezone_tables_missing", lambda alias="default": True)
    response = client.get("/readyz")
    assert (response.status_code, response.json()["code"]) == (503, "timezone_tables_missing")
    assert "mariadb-tzinfo-to-sql /usr/share/zoneinfo" in response.json()["detail"]
    [error] = [e for e in run_checks() if e.id == "kiosk.E001"]
    assert "time zone tables" in error.msg and "mariadb-tzinfo-to-sql" in error.hint
    with pytest.raises(Exception, match="mariadb-tzinfo-to-sql"):
        checks.fail_fast_on_missing_timezone_tables()


def test_the_time_zone_check_reads_the_real_database():
    from django.db import connection

    from kiosk.checks import timezone_tables_missing

    # CI loads MariaDB's tables (.ci/run); SQLite converts dates in Python and needs none.
    assert timezone_tables_missing() is False
    assert connection.vendor in ("sqlite", "mysql")


# --- A checkout where `make run` works: every manage.py command too -------------------------------


def test_make_run_writes_a_dot_env_that_every_command_uses(tmp_path, settings):
    """`make .env` (the first step of `make run`), then commands run with no variables set at all."""
    import shutil
    import subprocess
    import sys

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    base = settings.BASE_DIR
    for name in ("manage.py", "Makefile", "kiosk", "orders", "payments", "templates"):
        source = base / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    made = subprocess.run(
        ["make", "-s", ".env", f"PYTHON={sys.executable}"], cwd=tmp_path, env=clean, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    lines = (tmp_path / ".env").read_text().splitlines()
    assert "DEBUG=true" in lines
    key = next(line.split("=", 1)[1] for line in lines if line.startswith("SECRET_KEY="))
    assert len(key) >= 50 and key != settings.SECRET_KEY
    for command in (["migrate", "-v", "0"], ["reconcile_payments"], ["cancel_stale_orders"], ["purge_notifications"]):
        result = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=tmp_path, env=clean, capture_output=True, text=True
        )
        assert result.returncode == 0, (command, result.stderr[-2000:])
