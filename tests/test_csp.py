"""A Content-Security-Policy on every HTML page we serve, and pages that keep to it: no inline script, no
inline event handler, inline <style> only with the request's nonce, nothing loaded from another site."""

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client

EXECUTABLE_TYPES = {"", "text/javascript", "application/javascript", "module"}


class Breaches(HTMLParser):
    def __init__(self, nonce: str):
        super().__init__()
        self.nonce, self.found = nonce, []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...> (inline event handler)")
        if "style" in attributes:
            self.found.append(f"<{tag} style=...> (inline style attribute)")
        if tag == "script" and not attributes.get("src") and (attributes.get("type") or "") in EXECUTABLE_TYPES:
            self.found.append("<script> without src (inline script)")
        if tag == "style" and attributes.get("nonce") != self.nonce:
            self.found.append("<style> without the nonce")
        for name in ("src", "href"):
            url = attributes.get(name) or ""
            if tag in {"script", "link", "img", "iframe"} and re.match(r"(https?:)?//", url):
                self.found.append(f"<{tag} {name}={url}> (another site)")


def breaches(answer) -> list[str]:
    policy = answer["Content-Security-Policy"]
    match = re.search(r"'nonce-([^']+)'", policy)
    parser = Breaches(match[1] if match else "")
    parser.feed(answer.content.decode())
    return parser.found


@pytest.fixture
def root(db):
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="root"))
    return client


def test_the_policy_allows_only_this_site(db):
    policy = Client().get("/admin/login/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_every_page_keeps_to_the_policy(root, paid, settings):
    from payments.models import Payment

    settings.DEBUG = False  # the browsable API and debug pages are development tools
    payment = Payment.objects.get()
    pages = [
        "/admin/login/",
        "/admin/",
        "/admin/payments/payment/",
        f"/admin/payments/payment/{payment.pk}/change/",
        f"/admin/payments/payment/{payment.pk}/refund/",
        f"/admin/payments/payment/review/?ids={payment.pk}",
        "/admin/orders/order/",
        "/admin/orders/product/add/",
        "/admin/reports/sales/",
        "/api/docs/",
        f"/mp-simulator/pay/{payment.provider_order_id}/",
    ]
    seen = {}
    for page in pages:
        answer = (Client() if page.startswith(("/admin/login", "/mp-simulator")) else root).get(page)
        assert answer.status_code == 200, page
        seen[page] = breaches(answer)
    assert seen == {page: [] for page in pages}


def test_swagger_ui_starts_from_a_script_file(root):
    page = root.get("/api/docs/").content.decode()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert any("swagger-ui-bundle" in src for src in scripts)
    start = [src for src in scripts if "api/docs" in src or "script" in src]
    assert start and root.get(start[-1]).status_code == 200
    assert "schema" in root.get(start[-1]).content.decode()
