"""A real HTTP subscriber on 127.0.0.1 for the outgoing-webhook tests: it checks every signature the way the
README tells integrators to, records what arrived, and fails on purpose when told to."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scripts.webhook_listener import verify  # the README's few lines, as integrators copy them


class Subscriber:
    """`url` to register; `received` lists (delivery id, envelope) of every well-signed request that got a
    2xx; `fail(n)` answers 500 to the next n requests; `fail_when(pred)` answers 500 while pred(envelope)."""

    def __init__(self, secret: str = "", *, delay: float = 0.0):
        self.secret = secret
        self.delay = delay
        self.received: list[tuple[str, dict]] = []
        self.requests = 0
        self.bad_signatures = 0
        self.overlaps = 0  # the same delivery being received twice at the same moment
        self._in_flight: set[str] = set()
        self._fail_next = 0
        self._fail_when = None
        self._lock = threading.Lock()
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = subscriber._handle(self.headers, body)
                self.send_response(answer)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kiosk"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, count: int) -> None:
        self._fail_next = count

    def fail_when(self, predicate) -> None:
        self._fail_when = predicate

    def _handle(self, headers, body: bytes) -> int:
        delivery = headers.get("X-Kiosk-Delivery", "")
        with self._lock:
            self.requests += 1
            if delivery in self._in_flight:
                self.overlaps += 1
            self._in_flight.add(delivery)
        try:
            if self.delay:
                time.sleep(self.delay)
            if not verify(self.secret, headers.get("X-Kiosk-Signature", ""), body):
                with self._lock:
                    self.bad_signatures += 1
                return 401
            envelope = json.loads(body)
            with self._lock:
                if self._fail_next > 0:
                    self._fail_next -= 1
                    return 500
                if self._fail_when is not None and self._fail_when(envelope):
                    return 500
                if headers.get("X-Kiosk-Event") != envelope["type"]:
                    return 400
                self.received.append((delivery, envelope))
            return 204
        finally:
            with self._lock:
                self._in_flight.discard(delivery)

    def types(self) -> list[str]:
        return [envelope["type"] for _, envelope in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
