"""A double of Mercado Pago over real HTTP, for live mode: the official SDK, through our BaseUrlHttpClient,
reaches it on 127.0.0.1. Deliberately tiny and written from Mercado Pago's documentation (not from our
simulator): it records what we send and answers what a test scripts, so tests check our requests (URL, headers,
body types) and our reading of every kind of answer, faults included, on the real network path.

The `double` fixture (registered in tests/conftest.py) starts it and points live mode at it. A test scripts
answers in `double.script`: (status, body) where body is a dict or list (sent as JSON) or bytes (sent as they
are), a callable(request) returning that, or "timeout" (answers after the client gave up); an empty script
answers 404. `double.requests` holds what was sent: method, path, headers, key (x-idempotency-key), raw (the
body's text) and body (parsed, or None).
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings


class MercadoPagoDouble(BaseHTTPRequestHandler):
    script: list = []
    requests: list[dict] = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        request = {
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers),
            "key": self.headers.get("x-idempotency-key"),
            "raw": raw,
            "body": parsed,
        }
        MercadoPagoDouble.requests.append(request)
        item = MercadoPagoDouble.script.pop(0) if MercadoPagoDouble.script else (404, {"errors": [{"code": "nf"}]})
        if item == "timeout":
            time.sleep(settings.MERCADOPAGO_TIMEOUT * 3)
            item = (200, {})
        status, body = item(request) if callable(item) else item
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (the timeout case)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def double(settings, monkeypatch):
    from payments import gateway as gateway_module

    server = ThreadingHTTPServer(("127.0.0.1", 0), MercadoPagoDouble)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    MercadoPagoDouble.script, MercadoPagoDouble.requests = [], []
    settings.MERCADOPAGO_ACCESS_TOKEN = "APP_USR-1234-112233-abc-99"
    settings.MERCADOPAGO_SIMULATOR = False
    settings.MERCADOPAGO_API_BASE_URL = f"http://127.0.0.1:{server.server_port}"
    settings.MERCADOPAGO_MAX_RETRIES = 1
    settings.MERCADOPAGO_TIMEOUT = 0.3
    settings.MERCADOPAGO_BREAKER_THRESHOLD = 100
    monkeypatch.setattr(gateway_module, "_sleep", lambda seconds: None)
    gateway_module.breaker.reset()
    yield MercadoPagoDouble
    server.shutdown()
    gateway_module.breaker.reset()
