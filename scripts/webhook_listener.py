"""A subscriber to try the outgoing webhooks with: prints each event it receives and whether its signature
verifies. `.venv/bin/python scripts/webhook_listener.py [port] [secret]` (default port 9000); answers 204,
or 401 when a secret is given and the signature does not verify."""

import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    parts = dict(piece.split("=", 1) for piece in header.split(",") if "=" in piece)
    timestamp, signature = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False  # missing, or too old: a replay
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class Handler(BaseHTTPRequestHandler):
    secret = ""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ok = not self.secret or verify(self.secret, self.headers.get("X-Kiosk-Signature", ""), body)
        envelope = json.loads(body or b"{}")
        print(
            f"{envelope.get('type')} #{envelope.get('sequence')} of {envelope.get('aggregate')} "
            f"signature {'ok' if ok else 'BAD'} delivery {self.headers.get('X-Kiosk-Delivery')}",
            flush=True,
        )
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    Handler.secret = sys.argv[2] if len(sys.argv) > 2 else ""
    print(f"listening on http://127.0.0.1:{port}/hooks/kiosk", flush=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
