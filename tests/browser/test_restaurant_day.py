"""One order's day across the four screens, in Chromium, as the restaurant sees it: a customer orders a combo
with options on the kiosk and pays its QR on Mercado Pago's (simulated) page; the kitchen display shows it and
the cook advances it to ready with two taps; the pickup board on the TV calls its number; at the counter a
cashier takes cash for another customer's order. Every screen reads in Portuguese: none of the catalogue's
English is left on any of them (tests/test_i18n.py derives it from locale/pt_BR). The database is checked
after each step.

The screenshots (half scale) are the README's: `make screenshots` copies them to docs/screens/."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from orders.models import Order, Product
from payments.models import Payment
from tests.browser.conftest import screenshot, watch_errors
from tests.browser.test_kiosk_screen import (
    CSP_WATCH,
    assert_clean,
    card,
    expect,
    open_category,
    pay_on_simulator,
    site,  # noqa: F401 - the fixture, shared with the kiosk's tests
    start_order,
)
from tests.conftest import client_for, place
from tests.test_i18n import _leftovers, untranslated

pytestmark = pytest.mark.django_db(transaction=True)
S = Order.Status


@pytest.fixture
def screen(browser):
    """A screen of its own (a device), pt-BR in São Paulo, at half scale for small screenshots."""
    contexts = []

    def open_screen(width: int, height: int):
        context = browser.new_context(
            locale="pt-BR",
            timezone_id="America/Sao_Paulo",
            viewport={"width": width, "height": height},
            device_scale_factor=0.5,
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        watch_errors(page)
        page.add_init_script(CSP_WATCH)
        return page

    yield open_screen
    for context in contexts:
        context.close()


def log_in(page, url: str, username: str):
    page.goto(url)
    page.fill("#login-username", username)
    page.fill("#login-password", username)
    page.click("#login-form button[type=submit]")


def speaks_portuguese(page, leftovers):
    """None of the catalogue's English on the page as it is now (hidden views included)."""
    assert untranslated(page.content(), leftovers) == []


def test_a_combo_from_the_kiosk_to_the_pickup_board_and_cash_at_the_counter(site, screen):  # noqa: F811
    leftovers = _leftovers()

    # --- The kiosk: a combo with options, paid with the QR ---------------------------------------
    kiosk = screen(1080, 1400)
    log_in(kiosk, f"{site}/kiosk/", "kiosk1")
    expect(kiosk.locator("#start-button")).to_be_visible()
    speaks_portuguese(kiosk, leftovers)
    start_order(kiosk, "takeaway")
    open_category(kiosk, "Lanche")
    kiosk.wait_for_function(
        "[...document.querySelectorAll('.product-card img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    screenshot(kiosk, "readme-kiosk-menu")
    open_category(kiosk, "Combos")
    card(kiosk, "Combo X-Burger").click()
    kiosk.get_by_label("Batata grande").check()
    kiosk.get_by_label("Suco de laranja").check()
    kiosk.get_by_label("Cebola").check()
    kiosk.fill("#product-note", "Sem gelo")
    speaks_portuguese(kiosk, leftovers)
    kiosk.click("#product-add")
    kiosk.click("#cart-open")
    expect(kiosk.locator(".cart-line")).to_have_count(1)
    speaks_portuguese(kiosk, leftovers)
    kiosk.click("#cart-continue")
    kiosk.click("#cpf-skip")
    expect(kiosk.locator("#view-summary")).to_be_visible()
    speaks_portuguese(kiosk, leftovers)
    kiosk.click("#summary-pay")
    expect(kiosk.locator("#view-pay")).to_be_visible()
    kiosk.wait_for_function("document.getElementById('pay-qr').naturalWidth > 0")
    speaks_portuguese(kiosk, leftovers)
    screenshot(kiosk, "readme-kiosk-qr")
    pay_on_simulator(kiosk)
    expect(kiosk.locator("#view-done")).to_be_visible()
    order = Order.objects.get()
    expect(kiosk.locator("#done-number")).to_have_text(str(order.number))
    speaks_portuguese(kiosk, leftovers)
    assert (order.status, order.dining, order.total) == (S.RECEIVED, "takeaway", Decimal("44.40"))
    assert Payment.objects.get(order=order).status == Payment.Status.APPROVED
    assert_clean(kiosk)

    # --- The kitchen display: there by itself; two taps make it ready -----------------------------
    kitchen = screen(1600, 1000)
    log_in(kitchen, f"{site}/kitchen/", "kitchen1")
    ours = kitchen.locator(f'.card[data-number="{order.number}"]')
    expect(kitchen.locator(f'[data-cards="received"] .card[data-number="{order.number}"]')).to_be_visible()
    for words in ("Combo X-Burger", "Batata grande", "Suco de laranja", "Cebola", "Sem gelo"):
        expect(ours).to_contain_text(words)
    speaks_portuguese(kitchen, leftovers)

    tv = screen(1600, 900)
    tv.goto(f"{site}/pickup/loja-centro/")
    expect(tv.locator(f'[data-number="{order.number}"]')).to_have_count(0)  # paid, not being prepared yet

    ours.locator("button.advance").click()
    expect(kitchen.locator(f'[data-cards="in_preparation"] .card[data-number="{order.number}"]')).to_be_visible()
    expect(tv.locator(f'#preparing [data-number="{order.number}"]')).to_be_visible()
    ours.locator("button.advance").click()
    expect(kitchen.locator(f'[data-cards="ready"] .card[data-number="{order.number}"]')).to_be_visible()
    screenshot(kitchen, "readme-kitchen")
    order.refresh_from_db()
    assert order.status == S.READY

    # --- The pickup board calls the number --------------------------------------------------------
    expect(tv.locator(f'#ready [data-number="{order.number}"]')).to_be_visible()
    expect(tv.locator(f'#preparing [data-number="{order.number}"]')).to_have_count(0)
    speaks_portuguese(tv, leftovers)
    screenshot(tv, "readme-pickup")

    # --- The counter: another customer pays cash for an order placed at the kiosk -------------------
    burger = Product.objects.get(name="X-Burger")
    unpaid = place(
        client_for(User.objects.get(username="kiosk1")), [{"product_id": burger.pk, "quantity": 2}], dining="eat_in"
    ).json()
    assert unpaid["status"] == S.AWAITING_PAYMENT
    counter = screen(1440, 900)
    log_in(counter, f"{site}/counter/", "cashier1")
    counter.fill("#find-number", str(unpaid["number"]))
    counter.press("#find-number", "Enter")
    panel = counter.locator("#order")
    expect(panel.locator(".badge.status-awaiting_payment")).to_be_visible()
    counter.fill("#cash-received", "100,00")
    expect(counter.locator("#cash-change")).to_have_text(re.compile(r"R\$\s"))
    speaks_portuguese(counter, leftovers)
    screenshot(counter, "readme-counter")
    counter.click(".pay-button")
    expect(panel.locator(".message.success")).to_be_visible()
    speaks_portuguese(counter, leftovers)

    paid = Order.objects.get(pk=unpaid["id"])
    assert paid.status == S.RECEIVED
    assert [(p.provider, p.method, p.amount, p.status) for p in paid.payments.all()] == [
        ("counter", "cash", Decimal(unpaid["total"]), "approved")
    ]
    for page in (kitchen, tv, counter):
        assert_clean(page)
