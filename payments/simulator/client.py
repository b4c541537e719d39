"""An HTTP client for the official Mercado Pago SDK that answers from the simulator, in process.

    sdk = mercadopago.SDK(token, http_client=SimulatorHttpClient())
    sdk.order().create(body, RequestOptions(custom_headers={"x-idempotency-key": key}))

Everything above the transport stays the SDK's real code (headers, JSON encoding, MPResponse); only the
network hop is replaced by a call to `api.dispatch`. No HTTP means a single-threaded server never waits on
itself. The answer is round-tripped through JSON text so callers get exactly what the SDK's own HttpClient
would give them (numbers as floats, no Decimals, fresh objects).
"""

import json
from urllib.parse import parse_qsl, unquote, urlsplit

from mercadopago.http import HttpClient

from payments.simulator.api import dispatch


class SimulatorHttpClient(HttpClient):
    """`mercadopago.http.HttpClient` whose requests are answered by the simulator's dispatcher."""

    def request(self, method, url, maxretries=None, retry_on=None, backoff_factor=None, **kwargs):
        # The SDK builds "https://api.mercadopago.com" + uri; only the path and query matter here.
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        params.update(kwargs.get("params") or {})
        status, body = dispatch(
            method,
            unquote(parts.path),
            headers=kwargs.get("headers") or {},
            params=params,
            body=kwargs.get("data"),
        )
        response = {"status": status, "response": None}
        if status != 204 and body is not None:
            response["response"] = json.loads(json.dumps(body))
        return response
