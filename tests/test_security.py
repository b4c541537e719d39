"""Defences of docs/security.md that no other test file proves: which code may open a connection to an address
(SSRF), and that a server without its secrets refuses to start."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parent.parent
OUR_CODE = ["kiosk", "orders", "payments"]
HTTP_CLIENTS = {"requests", "urllib3", "httpx", "aiohttp", "http.client", "urllib.request", "mercadopago", "pycurl"}
# The only modules that may talk HTTP, and to where (docs/security.md, "SSRF"):
ALLOWED = {
    "kiosk/events/outbound.py": "subscriber URLs, checked at saving and again at connecting",
    "kiosk/events/delivery.py": "requests' exceptions only; sends through outbound.post",
    "payments/gateway.py": "the Mercado Pago SDK, at MERCADOPAGO_API_BASE_URL from the environment",
    "payments/simulator/client.py": "the simulator's SDK stand-in, in-process",
    "payments/simulator/notify.py": "the simulator's notifications, to MERCADOPAGO_NOTIFICATION_URL from the environment",
}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_only_the_known_modules_can_open_a_connection_to_a_url():
    """A URL we are given (a product's image_url, a notification's ids, a subscriber's URL) is never fetched by
    code that has not been through the SSRF checks: no other module of ours imports an HTTP client."""
    talking = {}
    for package in OUR_CODE:
        for path in sorted((BASE / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            clients = {
                module
                for module in imported_modules(path)
                if any(module == c or module.startswith(f"{c}.") for c in HTTP_CLIENTS)
            }
            if clients:
                talking[str(path.relative_to(BASE))] = clients
    assert set(talking) == set(ALLOWED), talking


def start_settings(**env: str) -> subprocess.CompletedProcess:
    """Loads the settings in a fresh Python, as a server process would (not under pytest, so `.env` is read:
    every variable that matters is given, an empty one wins over the file)."""
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run(
        [sys.executable, "-c", "import django; from django.conf import settings; settings.SECRET_KEY"],
        cwd=BASE,
        env={**keep, "DJANGO_SETTINGS_MODULE": "kiosk.settings", "DATABASE_URL": "sqlite:///:memory:", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "refusal"),
    [
        ({"SECRET_KEY": "", "MERCADOPAGO_WEBHOOK_SECRET": "s"}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "k" * 50, "MERCADOPAGO_WEBHOOK_SECRET": ""}, "MERCADOPAGO_WEBHOOK_SECRET"),
    ],
    ids=["no SECRET_KEY", "live mode without the webhook secret"],
)
def test_a_server_without_its_secrets_refuses_to_start(env, refusal):
    production = {"DEBUG": "false", "MERCADOPAGO_ACCESS_TOKEN": "APP_USR-1234-120509-abcdef-5678"}
    started = start_settings(**production, **env)
    assert started.returncode != 0 and "ImproperlyConfigured" in started.stderr and refusal in started.stderr
    complete = start_settings(**production, SECRET_KEY="k" * 50, MERCADOPAGO_WEBHOOK_SECRET="s")
    assert complete.returncode == 0, complete.stderr


def test_images_on_the_pages_come_only_from_this_site_data_or_https(client):
    """A product's image_url is shown by the kiosk's browser: under this policy a plain-http address on the
    store's network is never loaded, and nothing but images may come from elsewhere."""
    policy = client.get("/kiosk/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["img-src"].split() == ["'self'", "data:", "https:"]
    assert directives["connect-src"] == "'self'" and directives["script-src"] == "'self'"
