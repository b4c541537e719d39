"""The OpenAPI schema (/api/schema/) against the running API: schemathesis generates requests from the schema for
every operation, as each role (and as nobody), sends them to a live server over HTTP and checks each answer:
no 5xx, every status, content type, header and body as the schema says, valid input accepted, invalid input
refused with a 4xx.

Bounded: a few examples per operation, role and mode (EXAMPLES), no shrinking, the same examples every run
(derandomized), so that it takes seconds and a failure shows up again. SCHEMATHESIS_EXAMPLES=100 runs longer.
Operations that change state (pay, refund, cancel, the kitchen's steps) run too, on the Mercado Pago simulator:
examples name objects that exist (orders in every status, paid payments) as well as generated ids, and some valid
ones carry a body that does something. The figures (operations, examples by identity, answers, state changes,
failures by kind) are printed at the end of `make test`."""

import os
import socket
import time
from collections import Counter

import hypothesis
import pytest
import requests
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import FIGURES

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))
# Who calls: the demo logins (orders/management/commands/seed_demo.py), one per role, and nobody.
IDENTITIES = {
    "anonymous": None,
    "kiosk": "kiosk1",
    "kitchen": "kitchen1",
    "cashier": "cashier1",
    "manager": "manager1",
    "superuser": "admin",
}

# Answers to schema-valid requests that still say no, because of what the data names, not its shape: a product
# or store that does not exist, a combo's rules, a refund of more than was paid... The schema cannot tell these
# from good ones, so they are not "valid input refused". Anything else in 400 or 422 to a positive example is.
BUSINESS_REFUSALS = {
    "unknown_product",
    "invalid_options",
    "invalid_dining",
    "store_required",
    "refund_amount_invalid",
    "counter_amount_mismatch",
    "order_total_too_large",
    "idempotency_key_reused",
}


# A `validation_error` that is only about these fields is also about the data: they name a store or a category
# by its slug, and one that does not exist is refused as a validation error (docs/api.md).
NAMED_BY_SLUG = {"store", "category"}


class ValidInputRefused(AssertionError):
    pass


@st.composite
def cpfs(draw):
    """Valid CPFs (check digits right), written as people do: 12345678909 or 123.456.789-09."""
    digits = draw(st.lists(st.integers(0, 9), min_size=9, max_size=9).filter(lambda d: len(set(d)) > 1))
    for length in (9, 10):
        total = sum(d * w for d, w in zip(digits, range(length + 1, 1, -1), strict=True))
        digits.append(0 if total % 11 < 2 else 11 - total % 11)
    text = "".join(map(str, digits))
    return draw(st.sampled_from([text, f"{text[:3]}.{text[3:6]}.{text[6:9]}-{text[9:]}"]))


schemathesis.openapi.format("cpf", cpfs())


def valid_input_accepted(ctx, response, case):
    """schemathesis' positive_data_acceptance, knowing which refusals are about the data rather than its shape."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code not in (400, 422):
        return None
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code")
    named = code == "validation_error" and set(body.get("errors") or {"-": 0}) <= NAMED_BY_SLUG
    if code not in BUSINESS_REFUSALS and not named:
        raise ValidInputRefused(
            f"a request the schema says is valid was refused: {response.status_code} {response.text[:600]}"
        )
    return None


def invalid_input_refused(ctx, response, case):
    """schemathesis' negative_data_rejection, except for a query parameter sent empty or more than once: the API
    takes an empty one as not given and the last of several (Django's QueryDict), which no schema can say."""
    if any(value == "" or isinstance(value, list) for value in (case.query or {}).values()):
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    invalid_input_refused,
    valid_input_accepted,
]


@pytest.fixture
def public_dns(monkeypatch):
    """Every host name resolves to a public address (example.com's): offline, a generated webhook URL's host
    would otherwise never resolve, and its endpoint would never be created. Address literals resolve as such."""

    class PublicDNS:
        def __getattr__(self, name):
            return getattr(socket, name)

        @staticmethod
        def getaddrinfo(host, port, *args, **kwargs):
            try:
                return socket.getaddrinfo(host, port, *args, **{**kwargs, "flags": socket.AI_NUMERICHOST})
            except (socket.gaierror, UnicodeError, ValueError):
                return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", port or 80))]

    monkeypatch.setattr("kiosk.events.outbound.socket", PublicDNS())


@pytest.fixture
def demo(live_server, migration_data, mercadopago, settings, public_dns):
    """The demo stores, menu and logins, with orders in several states and paid payments to refund."""
    from rest_framework.throttling import SimpleRateThrottle

    settings.SITE_URL = live_server.url
    call_command("seed_demo", force=True, stdout=open(os.devnull, "w"))  # noqa: SIM115
    # The throttles answer 429 (in the schema) after a few dozen calls; the run wants to go past them.
    rates = {**SimpleRateThrottle.THROTTLE_RATES, "cpf_lookup": "100000/min", "pickup_board": "100000/min"}
    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = rates
    api = f"{live_server.url}/api/v1"
    tokens = {}
    for role, username in IDENTITIES.items():
        if username:
            answer = requests.post(f"{api}/auth/token/", json={"username": username, "password": username}, timeout=10)
            assert answer.status_code == 200, answer.text
            tokens[role] = answer.json()["access"]
    kiosk = {"Authorization": f"Bearer {tokens['kiosk']}"}

    from orders.models import Option, Product

    burger = Product.objects.get(name="X-Burger").pk

    def place(key: str) -> str:
        placed = requests.post(
            f"{api}/orders/",
            json={"items": [{"product_id": burger, "quantity": 1}], "dining": "takeaway"},
            headers={**kiosk, "Idempotency-Key": key},
            timeout=10,
        )
        assert placed.status_code == 201, placed.text
        return placed.json()["id"]

    orders, payments = [], []
    for n in range(6):
        orders.append(place(f"demo-order-{n}"))
        if n >= 2:  # two stay unpaid without a QR; the others get one, and three of those are paid
            checkout = requests.post(
                f"{api}/orders/{orders[-1]}/checkout/", headers={**kiosk, "Idempotency-Key": f"demo-qr-{n}"}, timeout=10
            )
            assert checkout.status_code == 201, checkout.text
            payment = checkout.json()["payment"]
            if n >= 3:
                mercadopago.pay(payment["provider_order_id"])
                payments.append(payment["id"])
    mercadopago.deliver()
    # Unpaid orders only the counter-payment examples see (the others cancel theirs first).
    at_the_counter = [place(f"demo-counter-{n}") for n in range(3)]
    from kiosk.events.models import WebhookEndpoint

    hooks = [WebhookEndpoint.objects.create(url=f"https://hooks.example.com/{n}", events=["*"]).pk for n in range(2)]
    yield {
        "url": live_server.url,
        "tokens": tokens,
        "pools": {
            "order_id": orders,
            "payment_id": payments,
            "product_id": list(Product.objects.values_list("pk", flat=True)),
            "option_id": list(Option.objects.values_list("pk", flat=True)[:10]),
            "endpoint_id": hooks,
        },
        "pools_for": {"POST /api/v1/orders/{order_id}/counter-payment/": {"order_id": at_the_counter}},
        # Bodies that do something (the demo orders cost 25.90): random ones almost never pay an order at the
        # counter, refund a payment or move an order in the kitchen, so a third of the valid examples use these.
        "bodies": {
            "POST /api/v1/orders/": [{"items": [{"product_id": burger, "quantity": 1}], "dining": "takeaway"}],
            "POST /api/v1/products/": [{"category": "lanche", "name": "X-Tudo", "price": "33.90", "stock": 5}],
            "POST /api/v1/orders/{order_id}/counter-payment/": [{"method": "cash", "amount": "25.90"}],
            "POST /api/v1/payments/{payment_id}/refunds/": [
                {"amount": "1.00", "reason": "cold fries"},
                {"reason": "all"},
            ],
            "POST /api/v1/kitchen/orders/{order_id}/status/": [
                {"status": s} for s in ("in_preparation", "ready", "completed")
            ],
        },
    }
    SimpleRateThrottle.THROTTLE_RATES = original


def strategy_for(operation, mode, demo):
    """The operation's generated cases; for an operation on an object, half of them name one that exists, and
    valid ones may carry a body that does something (demo["bodies"])."""
    pools = {**demo["pools"], **demo["pools_for"].get(operation.label, {})}
    strategies = [operation.as_strategy(generation_mode=mode)]
    names = [p.name for p in operation.path_parameters]
    if names and all(pools.get(name) for name in names):
        existing = st.fixed_dictionaries({name: st.sampled_from(pools[name]) for name in names})
    else:
        existing = st.just({}) if not names else None
    if names and existing is not None:
        strategies.append(
            existing.flatmap(lambda values: operation.as_strategy(generation_mode=mode, path_parameters=values))
        )
    bodies = demo["bodies"].get(operation.label)
    if bodies and mode.is_positive and existing is not None:
        strategies.append(
            st.tuples(existing, st.sampled_from(bodies)).flatmap(
                lambda chosen: operation.as_strategy(
                    generation_mode=mode, path_parameters=chosen[0] or None, body=chosen[1]
                )
            )
        )
    return st.one_of(*strategies)


class Tally:
    """What the run did and found: examples per operation, answers by status, failures by kind (the first of
    each kind per operation kept, with the request as a curl command, for the report)."""

    def __init__(self):
        self.examples = Counter()
        self.by_role = Counter()
        self.changes = Counter()  # 2xx answers to operations that change something, by path
        self.statuses = Counter()
        self.failures = Counter()
        self.first = {}

    def record(self, failure, *, operation, role, mode, case, headers):
        kind = type(failure).__name__
        self.failures[kind] += 1
        key = (operation.label, kind)
        if key not in self.first:
            curl = case.as_curl_command(headers=headers)
            self.first[key] = (
                f"{operation.label} as {role} ({mode.value}): {failure.title}\n    {failure.message}\n    {curl}"[:2000]
            )


def exercise(operation, strategy, *, role, mode, examples, demo, session, tally):
    """`examples` generated requests to one operation, as one identity, in one generation mode."""
    headers = {"Authorization": f"Bearer {demo['tokens'][role]}"} if role in demo["tokens"] else {}

    @hypothesis.settings(
        max_examples=examples,
        phases=[Phase.generate],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def run(case):
        tally.examples[operation.label] += 1
        tally.by_role[role] += 1
        response = case.call(base_url=demo["url"], session=session, headers=headers, timeout=15)
        tally.statuses[response.status_code] += 1
        if operation.method.upper() != "GET" and 200 <= response.status_code < 300:
            tally.changes[operation.label.split(" ", 1)[1].removeprefix("/api/v1/")] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except schemathesis.errors.FailureGroup as group:
            for failure in group.exceptions:
                tally.record(failure, operation=operation, role=role, mode=mode, case=case, headers=headers)

    run()


NOWHERE = {"order_id": "00000000-0000-0000-0000-000000000000"}


def lets_in(operation, role, *, raw, demo, session) -> bool:
    """Whether this identity gets past the operation's login and role checks: asked once with an object that
    does not exist and no body, so nothing changes (a role that may not call it gets 401 or 403 before
    anything is looked at). A public operation lets only the anonymous caller in: a token changes nothing there."""
    if not raw["paths"][operation.path][operation.method.lower()].get("security"):
        return role == "anonymous"
    if role in ("anonymous", "superuser"):  # nobody is let in anywhere a login is needed; a superuser everywhere
        return role == "superuser"
    path = operation.path
    for parameter in operation.path_parameters:
        path = path.replace(f"{{{parameter.name}}}", NOWHERE.get(parameter.name, "999999999"))
    headers = {"Authorization": f"Bearer {demo['tokens'][role]}"} if role in demo["tokens"] else {}
    answer = session.request(operation.method, f"{demo['url']}{path}", headers=headers, timeout=15)
    return answer.status_code not in (401, 403) or answer.json().get("code") not in (
        "not_authenticated",
        "permission_denied",
    )


@pytest.mark.timeout(600)  # about a minute alone; more beside the rest of the suite on two cores
def test_the_api_answers_as_its_schema_says(demo, record_property):
    """Each operation, as each identity: EXAMPLES valid and EXAMPLES invalid requests from those it lets in,
    one of each from those it turns away (their answer is the same 401 or 403 whatever they send)."""
    started = time.monotonic()
    raw = requests.get(f"{demo['url']}/api/schema/?format=json", timeout=15).json()
    schema = schemathesis.openapi.from_dict(raw)
    # Text with NUL characters is refused everywhere (Django's rule for every text field): not worth a pattern
    # on each string of the schema, so not generated as valid input.
    schema.config.generation.update(allow_x00=False)
    # A body over 64 KiB is refused with 413 payload_too_large: a refusal too.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    operations = [result.ok() for result in schema.get_all_operations()]
    session = requests.Session()
    tally = Tally()
    for operation in operations:
        modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
        strategies = {mode: strategy_for(operation, mode, demo) for mode in modes}
        for role in IDENTITIES:
            # A superuser is a manager with every permission: the manager's examples cover most of its ground.
            examples = max(1, EXAMPLES // 2) if role == "superuser" else EXAMPLES
            if not lets_in(operation, role, raw=raw, demo=demo, session=session):
                examples = 1
            for mode in modes:
                exercise(
                    operation,
                    strategies[mode],
                    role=role,
                    mode=mode,
                    examples=examples,
                    demo=demo,
                    session=session,
                    tally=tally,
                )

    seconds = time.monotonic() - started
    figures = (
        f"schemathesis: {len(operations)} operations, {sum(tally.examples.values())} examples "
        f"({', '.join(f'{role} {n}' for role, n in tally.by_role.items())}) in {seconds:.1f} s; "
        f"answers {dict(sorted(tally.statuses.items()))}; done {dict(sorted(tally.changes.items()))}; "
        f"failures {dict(tally.failures) or 'none'}"
    )
    record_property(FIGURES, figures)
    print(figures)
    assert not tally.failures, "\n".join(tally.first.values())
