"""The production shape, checked offline: gunicorn's settings and access log, the container image's
Dockerfile and the compose file (no Docker daemon here: the files are read, not built)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.servers import production_gunicorn

BASE = Path(__file__).resolve().parent.parent


def _gunicorn_settings(**env) -> dict:
    code = "import runpy, json; s = runpy.run_path('gunicorn.conf.py'); print(json.dumps({k: v for k, v in s.items() if isinstance(v, (int, str)) and not k.startswith('_')}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE, env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_gunicorn_answers_before_mercado_pago_gives_up_and_sizes_from_the_environment():
    default = _gunicorn_settings()
    assert default["timeout"] < 22 and default["graceful_timeout"] < 22  # Mercado Pago waits 22 s
    assert (default["workers"], default["threads"], default["worker_class"]) == (3, 4, "gthread")
    tuned = _gunicorn_settings(GUNICORN_WORKERS="5", GUNICORN_THREADS="8", PORT="9000")
    assert (tuned["workers"], tuned["threads"], tuned["bind"]) == (5, 8, "0.0.0.0:9000")


def test_the_access_log_is_json_and_never_holds_a_query_string_or_a_cpf(tmp_path):
    with production_gunicorn(tmp_path) as url:
        answer = requests.get(
            f"{url}/api/v1/customers/?cpf=529.982.247-25&email=maria@example.com",
            headers={"X-Request-ID": "req-42", "User-Agent": "totem 52998224725"},
            timeout=5,
        )
        assert answer.status_code == 401
    text = (tmp_path / "gunicorn.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    customers = [line for line in lines if line.get("path") == "/api/v1/customers/"]
    assert customers, text
    line = customers[0]
    assert (line["method"], line["status"], line["request_id"], line["logger"]) == (
        "GET",
        401,
        "req-42",
        "gunicorn.access",
    )
    assert line["duration_ms"] >= 0 and "time" in line and "level" in line
    assert "cpf" not in text and "52998224725" not in text and "529.982.247-25" not in text
    assert "maria@example.com" not in text


# --- The image and the compose file -----------------------------------------------------------------


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split by stage."""
    text = (BASE / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    stages: list[list[str]] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_the_image_is_multi_stage_non_root_without_compilers_and_checks_its_health():
    stages = _stages()
    assert len(stages) >= 2
    build, final = stages[0], stages[-1]
    assert final[0].startswith("FROM python:3.11-slim")
    assert any("collectstatic" in line for line in build)  # static files at build time
    final_text = "\n".join(final)
    for compiler in ("build-essential", "gcc", "libmysqlclient-dev", "pkg-config"):
        assert compiler not in final_text
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0") and users[-1].split(":")[0].isdigit()
    assert any(line.upper().startswith("HEALTHCHECK ") and "/healthz" in line for line in final)
    cmd = [line for line in final if line.upper().startswith("CMD ")][-1]
    assert "gunicorn" in cmd and "gunicorn.conf.py" in cmd
    ignored = (BASE / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "db.sqlite3"} <= set(ignored)


def test_compose_runs_web_worker_and_mariadb_from_one_image():
    compose = yaml.safe_load((BASE / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "migrate", "web", "worker"} <= set(services)
    assert services["web"]["image"] == services["worker"]["image"] == services["migrate"]["image"]
    assert "run_worker" in " ".join(services["worker"]["command"])
    assert "migrate" in " ".join(services["migrate"]["command"])
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "ports" not in services["db"]  # the database is not published
    assert services["db"]["image"].startswith("mariadb:")


def test_hadolint_finds_nothing_in_the_dockerfile():
    import shutil

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (requirements-dev.txt brings it)")
    result = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=BASE, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Security settings ------------------------------------------------------------------------------------

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k" + "Zq8-vR2#mT5!xW9@" * 4,
    "ALLOWED_HOSTS": "kiosk.example.com",
    "BEHIND_TLS_PROXY": "true",
    # Production has Mercado Pago credentials (without them the app refuses to start with DEBUG off).
    "MERCADOPAGO_ACCESS_TOKEN": "APP_USR-1234-120509-abcdef-5678",
    "MERCADOPAGO_WEBHOOK_SECRET": "example-secret-signature",
}


def test_check_deploy_passes_with_the_production_settings_and_nothing_else(tmp_path):
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **PRODUCTION_ENV}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_behind_the_tls_proxy_plain_http_is_redirected_except_the_probes(settings):
    from django.test import Client

    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client()
    assert client.get("/api/v1/products/").status_code == 301  # plain HTTP: to HTTPS
    assert client.get("/healthz").status_code == 200  # the kubelet's probe, in the cluster
    over_tls = client.get("/healthz", HTTP_X_FORWARDED_PROTO="https")
    assert over_tls.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_the_admin_path_is_configurable(tmp_path):
    code = (
        "import django; django.setup(); from django.test import Client; from django.core.management import "
        "call_command; call_command('migrate', verbosity=0); c = Client(); "
        "print(c.get('/back-office/login/').status_code, c.get('/admin/login/').status_code, "
        "c.get('/back-office/reports/sales/').status_code)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kiosk.settings",
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    moved = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE,
        env={**env, "ADMIN_URL": "/back-office/"},
        capture_output=True,
        text=True,
    )
    assert moved.stdout.split() == ["200", "404", "302"], moved.stderr[-2000:]  # reports: to the login page
    wrong = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=BASE,
        env={**env, "ADMIN_URL": "../x?"},
        capture_output=True,
        text=True,
    )
    assert wrong.returncode != 0 and "ADMIN_URL must be a path" in wrong.stderr
