"""The kiosk screen in Chromium, over a live server with the Mercado Pago simulator and our worker process: a
customer orders a combo with options and a note, gives a CPF (an invalid one is refused as it is typed), pays
the QR on the simulator's pay page and gets the pickup number; a sold-out product leaves the menu without a
reload; a retried order placement makes one order; a declined payment is tried again; a kiosk left alone
goes back to its start screen and cancels the unpaid order. The database is checked after each."""

import base64
import re
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command

from orders import selectors, services
from orders.models import Option, Order, Product
from payments.gateway import breaker
from payments.models import Payment
from payments.simulator import pump
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

# Violations of the page's Content-Security-Policy, recorded as the browser reports them.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) =>
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`));
"""
VALID_CPF = "52998224725"
# How wide the dark modules of a picture of the QR (as the screen drew it, a PNG) span, against its width.
DARK_SPAN = """async (source) => {
  const image = new Image();
  image.src = source;
  await image.decode();
  const [width, height] = [image.naturalWidth, image.naturalHeight];
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [width, height];
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, width, height).data;
  let [left, right] = [width, -1];
  for (let at = 0; at < pixels.length; at += 4) {
    if (pixels[at] < 100 && pixels[at + 1] < 100 && pixels[at + 2] < 100) {
      const x = (at / 4) % width;
      [left, right] = [Math.min(left, x), Math.max(right, x)];
    }
  }
  return { width, dark: right >= left ? right - left + 1 : 0 };
}"""


def expect(locator, timeout=15_000):
    """Playwright's expect(), waiting longer by default: a payment travels through the simulator and a worker."""
    from playwright.sync_api import expect as playwright_expect

    return _Patient(playwright_expect(locator), timeout)


class _Patient:
    def __init__(self, assertions, timeout):
        self._assertions, self._timeout = assertions, timeout

    def __getattr__(self, name):
        method = getattr(self._assertions, name)
        return lambda *args, **kwargs: method(*args, **{"timeout": self._timeout, **kwargs})


def text(page, selector: str) -> str:
    """An element's text with the non-breaking spaces of Intl's money ("R$ 44,40") as plain spaces."""
    return page.locator(selector).inner_text().replace("\xa0", " ")


def option(product: str, group: str, name: str) -> Option:
    return Option.objects.get(group__product__name=product, group__name=group, name=name)


@pytest.fixture
def site(live_server, settings, migration_data, workers):
    """The demo (Loja Centro offers eat in and take away; kiosk1 is its terminal) on a live server whose
    simulated Mercado Pago notifies a moment after each call, as the real one does; our worker applies them."""
    settings.MERCADOPAGO_SIMULATOR_AUTOPUMP = True
    settings.MERCADOPAGO_SIMULATOR_NOTIFY_DELAY = 0.3
    settings.SITE_URL = live_server.url
    settings.MERCADOPAGO_NOTIFICATION_URL = f"{live_server.url}/api/v1/webhooks/mercadopago/"
    breaker.reset()
    call_command("seed_demo", force=True, stdout=open("/dev/null", "w"))  # noqa: SIM115
    workers.start(SITE_URL=live_server.url)
    yield live_server.url
    pump.stop()  # its notifications still due would reach for a database the test no longer has
    breaker.reset()


@pytest.fixture
def kiosk(page, site):
    """The kiosk page, logged in as kiosk1 (the login stays on the device), on its start screen. Call it with
    the page's query string (idle times, menu polling)."""
    page.add_init_script(CSP_WATCH)

    def open_kiosk(query: str = ""):
        page.goto(f"{site}/kiosk/{query}")
        page.fill("#login-username", "kiosk1")
        page.fill("#login-password", "kiosk1")
        page.click("#login-form button[type=submit]")
        expect(page.locator("#start-button")).to_be_visible()
        return page

    return open_kiosk


def assert_clean(page, *, lost_answers: int = 0):
    """No script error and nothing refused by the page's policy (besides the browser's word on an answer the
    test itself cut off)."""
    lost = [e for e in page.js_errors if e == "Failed to load resource: net::ERR_CONNECTION_RESET"]
    assert len(lost) == lost_answers
    assert [e for e in page.js_errors if e not in lost] == []
    assert page.evaluate("window.__cspViolations") == []


def start_order(page, dining="eat_in"):
    page.click("#start-button")
    page.click(f"[data-dining={dining}]")
    expect(page.locator("#view-menu")).to_be_visible()


def open_category(page, name: str):
    page.locator(".category", has_text=name).click()
    expect(page.locator(".category-title")).to_have_text(name)


def card(page, name: str):
    return page.locator(".product-card", has=page.locator(".product-name", has_text=re.compile(f"^{re.escape(name)}$")))


def add_plain(page, category: str, name: str):
    """A product with no required choice, straight into the cart."""
    open_category(page, category)
    card(page, name).click()
    page.click("#product-add")
    expect(page.locator("#view-menu")).to_be_visible()


def to_summary(page, cpf: str = ""):
    page.click("#cart-open")
    page.click("#cart-continue")
    if cpf:
        page.fill("#cpf-input", cpf)
        page.click("#cpf-use")
    else:
        page.click("#cpf-skip")
    expect(page.locator("#view-summary")).to_be_visible()


def pay_on_simulator(page, action: str = "pay"):
    """The customer's phone: the QR's link (the simulator's pay page) opened in another tab, Pagar or Recusar."""
    phone = page.context.new_page()
    phone.goto(page.get_attribute("#pay-simulator-link", "href"))
    # The form's answer (its page after the POST) arrives before the tab closes: closing a tab in the middle of
    # a navigation can hang Chromium's close on a loaded machine.
    with phone.expect_navigation():
        phone.click(f"button[value={action}]")
    phone.close()


def test_a_customer_orders_a_combo_with_options_and_pays_with_the_qr(kiosk):
    page = kiosk()
    screenshot(page, "kiosk-start")
    start_order(page, "eat_in")
    expect(page.locator("#menu-dining")).to_be_visible()
    # The menu by category, with pictures (the demo's own, loaded from this site) and prices.
    open_category(page, "Lanche")
    expect(card(page, "X-Burger").locator(".product-price")).to_have_text(re.compile(r"R\$\s25,90"))
    page.wait_for_function(
        "[...document.querySelectorAll('.product-card img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator(".product-card img").count() == 4
    screenshot(page, "kiosk-menu")

    open_category(page, "Combos")
    card(page, "Combo X-Burger").click()
    expect(page.locator("#product-title")).to_have_text("Combo X-Burger")
    # The only sandwich is chosen already; its own options show under it ("Retirar" for the X-Burger).
    expect(page.get_by_label("X-Burger", exact=True)).to_be_checked()
    page.get_by_label("Batata grande").check()
    # A required slot left empty: the order cannot take the combo, and the screen says which slot.
    page.click("#product-add")
    expect(page.locator("#view-product")).to_be_visible()
    expect(page.locator("#product-missing")).to_contain_text("Bebida")
    page.get_by_label("Suco de laranja").check()
    page.get_by_label("Cebola").check()
    expect(page.locator("#product-missing")).to_have_text("")
    page.fill("#product-note", "Sem gelo no suco")
    # 39,90 + 2,00 (large fries) + 2,50 (orange juice); two of them.
    expect(page.locator(".add-price")).to_have_text(re.compile(r"R\$\s44,40"))
    page.locator(".product-actions .step").last.click()
    expect(page.locator(".add-price")).to_have_text(re.compile(r"R\$\s88,80"))
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "kiosk-product")
    page.click("#product-add")
    expect(page.locator("#cart-summary")).to_contain_text("88,80")

    page.click("#cart-open")
    line = page.locator(".cart-line")
    expect(line).to_have_count(1)
    expect(line.locator(".line-options")).to_have_text(
        "Lanche: X-Burger (Retirar: Cebola) · Acompanhamento: Batata grande · Bebida: Suco de laranja"
    )
    expect(line.locator(".note")).to_contain_text("Sem gelo no suco")
    line.locator(".step").first.click()  # back to one
    expect(page.locator("#cart-total")).to_contain_text("44,40")
    screenshot(page, "kiosk-cart")

    # CPF na nota: a wrong check digit is refused as it is typed; the right one is accepted.
    page.click("#cart-continue")
    page.locator("#cpf-input").press_sequentially("529982247")
    expect(page.locator("#cpf-use")).to_be_disabled()
    expect(page.locator("#cpf-input")).to_have_attribute("aria-invalid", "false")  # not complete yet
    page.locator("#cpf-input").press_sequentially("24")
    expect(page.locator("#cpf-input")).to_have_value("529.982.247-24")
    expect(page.locator("#cpf-input")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#cpf-feedback")).to_have_class(re.compile(r"\bbad\b"))
    expect(page.locator("#cpf-use")).to_be_disabled()
    page.locator("#cpf-keypad .key").last.click()  # delete the last digit on the screen's keypad
    page.locator("#cpf-keypad .key", has_text=re.compile("^5$")).click()
    expect(page.locator("#cpf-input")).to_have_value("529.982.247-25")
    expect(page.locator("#cpf-feedback")).to_have_class(re.compile(r"\bok\b"))
    page.click("#cpf-use")

    # The summary is the API's answer: its lines and its total.
    expect(page.locator("#view-summary")).to_be_visible()
    order = Order.objects.get()
    assert order.total == Decimal("44.40") and order.status == Order.Status.AWAITING_PAYMENT
    assert text(page, "#summary-total") == "R$ 44,40"
    expect(page.locator("#summary-facts")).to_contain_text("***.982.247-**")

    page.click("#summary-pay")
    expect(page.locator("#view-pay")).to_be_visible()
    page.wait_for_function("document.getElementById('pay-qr').naturalWidth > 0")
    # The QR fills its frame (the API's SVG scales to it), large enough to scan from a step away.
    qr = page.locator("#pay-qr")
    assert qr.bounding_box()["width"] >= 300
    drawn = page.evaluate(DARK_SPAN, f"data:image/png;base64,{base64.b64encode(qr.screenshot()).decode()}")
    assert drawn["dark"] >= 0.85 * drawn["width"], drawn
    expect(page.locator("#pay-countdown")).to_contain_text(re.compile(r"\b1[45]:\d\d\b"))
    assert text(page, "#pay-amount") == "R$ 44,40"
    screenshot(page, "kiosk-qr")

    pay_on_simulator(page)
    expect(page.locator("#view-done")).to_be_visible()
    order.refresh_from_db()
    expect(page.locator("#done-number")).to_have_text(str(order.number))
    screenshot(page, "kiosk-success")

    # One order, as chosen, paid through Mercado Pago.
    assert Order.objects.count() == 1
    assert order.status == Order.Status.RECEIVED
    assert (order.dining, order.cpf_on_receipt, order.customer.cpf) == ("eat_in", True, VALID_CPF)
    (item,) = order.items.prefetch_related("options")
    assert (item.product_name, item.quantity, item.note) == ("Combo X-Burger", 1, "Sem gelo no suco")
    assert (item.unit_price, item.line_total, order.total) == (Decimal("44.40"),) * 3
    chosen = [
        (o["group"], o["name"], [(p["group"], p["name"]) for p in o["options"]]) for o in selectors.item_options(item)
    ]
    assert sorted(chosen) == [
        ("Acompanhamento", "Batata grande", []),
        ("Bebida", "Suco de laranja", []),
        ("Lanche", "X-Burger", [("Retirar", "Cebola")]),
    ]
    payment = Payment.objects.get(order=order)
    assert (payment.status, payment.paid_amount) == (Payment.Status.APPROVED, Decimal("44.40"))
    assert_clean(page)


def test_a_sold_out_product_leaves_the_menu_without_a_reload(kiosk):
    page = kiosk("?menu_poll=1")
    start_order(page, "takeaway")
    add_plain(page, "Bebida", "Suco de laranja")
    expect(card(page, "Suco de laranja")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    # Polling costs a 304 while nothing changes.
    with page.expect_response(lambda r: r.url.endswith("/api/v1/products/") and r.status == 304):
        pass

    juice = Product.objects.get(name="Suco de laranja")
    services.product_update(product_id=juice.pk, stock=0)  # the last one sold at the counter

    expect(card(page, "Suco de laranja")).to_have_count(0)
    expect(card(page, "Água mineral")).to_be_visible()
    expect(page.locator("#toast")).to_contain_text("Suco de laranja")  # and it left the cart
    expect(page.locator("#cart-open")).to_be_disabled()
    # In the combo, the juice is there but cannot be chosen.
    open_category(page, "Combos")
    card(page, "Combo X-Burger").click()
    expect(page.get_by_label("Suco de laranja")).to_be_disabled()
    expect(page.get_by_label("Refrigerante")).to_be_enabled()
    assert page.evaluate("window.stillTheSamePage") is True
    assert_clean(page)


def test_a_retried_order_placement_makes_one_order(kiosk):
    page = kiosk()
    sent = []

    def lose_the_first_answer(route):
        request = route.request
        sent.append(request.headers.get("idempotency-key"))
        if request.method == "POST" and len(sent) == 1:
            route.fetch()  # the server places the order...
            route.abort("connectionreset")  # ...and its answer never reaches the kiosk
        else:
            route.continue_()

    page.route("**/api/v1/orders/", lose_the_first_answer)
    replayed = []
    page.on(
        "response",
        lambda r: replayed.append(r.headers.get("idempotent-replayed"))
        if r.url.endswith("/api/v1/orders/") and r.request.method == "POST"
        else None,
    )
    start_order(page, "takeaway")
    add_plain(page, "Lanche", "X-Burger")
    to_summary(page)

    # The kiosk sent the same attempt again with the same key, and the server answered the order it had made.
    assert len(sent) == 2 and sent[0] == sent[1] and sent[0]
    assert replayed == ["true"]
    first = Order.objects.get()
    assert text(page, "#summary-total") == "R$ 25,90" and first.total == Decimal("25.90")

    # A changed order is a new attempt: the placed one is cancelled, the new one has a key of its own.
    page.click("#summary-change")
    expect(page.locator("#view-cart")).to_be_visible()
    page.click("[data-action=menu]")
    add_plain(page, "Bebida", "Água mineral")
    to_summary(page)
    assert len(sent) == 3 and sent[2] != sent[0]
    assert Order.objects.count() == 2
    first.refresh_from_db()
    assert (first.status, first.cancel_reason) == (Order.Status.CANCELLED, Order.CancelReason.CUSTOMER)
    second = Order.objects.exclude(pk=first.pk).get()
    assert second.status == Order.Status.AWAITING_PAYMENT and second.total == Decimal("30.40")
    assert_clean(page, lost_answers=1)


def test_a_declined_payment_is_tried_again_with_a_new_qr(kiosk):
    page = kiosk()
    checkout_keys = []
    page.on(
        "request",
        lambda r: checkout_keys.append(r.headers.get("idempotency-key")) if r.url.endswith("/checkout/") else None,
    )
    start_order(page, "takeaway")
    add_plain(page, "Sobremesa", "Torta de maçã")
    to_summary(page)
    page.click("#summary-pay")
    expect(page.locator("#view-pay")).to_be_visible()
    first_qr = page.get_attribute("#pay-simulator-link", "href")

    pay_on_simulator(page, "reject")
    expect(page.locator("#view-problem")).to_be_visible()
    screenshot(page, "kiosk-declined")
    page.locator("#problem-actions .primary").click()  # try again
    expect(page.locator("#view-pay")).to_be_visible()
    assert page.get_attribute("#pay-simulator-link", "href") != first_qr
    assert len(checkout_keys) == 2 and checkout_keys[0] != checkout_keys[1]

    pay_on_simulator(page)
    expect(page.locator("#view-done")).to_be_visible()
    order = Order.objects.get()
    assert order.status == Order.Status.RECEIVED
    assert sorted(Payment.objects.filter(order=order).values_list("status", flat=True)) == ["approved", "rejected"]
    assert_clean(page)


def test_money_that_does_not_pay_the_order_sends_the_customer_to_the_counter(kiosk, site):
    page = kiosk()
    start_order(page, "eat_in")
    add_plain(page, "Sobremesa", "Sundae de chocolate")
    to_summary(page)
    page.click("#summary-pay")
    expect(page.locator("#view-pay")).to_be_visible()
    # The buyer's app pays the wrong amount: the money waits for staff, the kiosk must not charge again.
    provider_order = page.get_attribute("#pay-simulator-link", "href").rstrip("/").rsplit("/", 1)[-1]
    paid = requests.post(
        f"{site}/mp-simulator/v1/orders/{provider_order}/simulate",
        json={"outcome": "approved", "paid_amount": "1.00"},
        timeout=10,
    )
    assert paid.status_code == 200, paid.text

    expect(page.locator("#view-problem")).to_be_visible()
    order = Order.objects.get()
    expect(page.locator("#problem-number")).to_have_text(str(order.number))
    screenshot(page, "kiosk-see-the-counter")
    page.locator("#problem-actions .primary").click()
    expect(page.locator("#view-start")).to_be_visible()
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT  # left to the counter, not cancelled by the kiosk
    assert Payment.objects.get(order=order).paid_amount == Decimal("1.00")
    assert_clean(page)


def test_an_expired_qr_is_replaced_and_the_order_can_be_cancelled(kiosk, settings):
    settings.MERCADOPAGO_QR_EXPIRATION = timedelta(seconds=4)  # on our clock; the countdown follows it
    page = kiosk()
    start_order(page, "takeaway")
    add_plain(page, "Bebida", "Água mineral")
    to_summary(page)
    page.click("#summary-pay")
    expect(page.locator("#view-pay")).to_be_visible()
    expect(page.locator("#pay-countdown")).to_contain_text(re.compile(r"\b0:0[0-4]\b"))
    first_qr = page.get_attribute("#pay-simulator-link", "href")

    expect(page.locator("#view-problem")).to_be_visible(timeout=10_000)
    screenshot(page, "kiosk-expired")
    page.locator("#problem-actions .primary").click()  # a new QR
    expect(page.locator("#view-pay")).to_be_visible()
    assert page.get_attribute("#pay-simulator-link", "href") != first_qr

    # The customer gives up: asked once, then the order is cancelled and the kiosk is ready for the next one.
    page.locator("#view-pay [data-action=cancel-order]").click()
    expect(page.locator("#cancel-dialog")).to_be_visible()
    page.click("#cancel-yes")
    expect(page.locator("#view-start")).to_be_visible()
    order = Order.objects.get()
    assert (order.status, order.cancel_reason) == (Order.Status.CANCELLED, Order.CancelReason.CUSTOMER)
    first, second = Payment.objects.filter(order=order).order_by("created_at")
    assert first.status == Payment.Status.EXPIRED and second.status != Payment.Status.APPROVED
    assert_clean(page)


def test_a_kiosk_left_alone_asks_then_starts_over_and_cancels_the_unpaid_order(kiosk):
    page = kiosk("?idle=4&idle_warning=3")
    start_order(page, "eat_in")
    add_plain(page, "Acompanhamento", "Onion rings")
    to_summary(page)
    order = Order.objects.get()
    assert Product.objects.get(name="Onion rings").stock == 29  # reserved

    expect(page.locator("#idle-dialog")).to_be_visible(timeout=8_000)
    screenshot(page, "kiosk-idle")
    expect(page.locator("#view-start")).to_be_visible(timeout=8_000)
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (Order.Status.CANCELLED, Order.CancelReason.CUSTOMER)
    assert Product.objects.get(name="Onion rings").stock == 30  # given back
    # The next customer starts with an empty order.
    start_order(page, "takeaway")
    expect(page.locator("#cart-open")).to_be_disabled()
    assert_clean(page)


def test_a_staff_login_on_the_kiosk_is_told_to_use_the_terminals(page, site):
    """GET /me/ names no terminal for a kitchen login: the kiosk says so instead of showing its menu."""
    page.goto(f"{site}/kiosk/")
    page.fill("#login-username", "kitchen1")
    page.fill("#login-password", "kitchen1")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#terminal-problem")).to_be_visible()
    expect(page.locator("#view-start")).to_be_hidden()
    page.locator("#terminal-problem button").first.click()  # log out
    expect(page.locator("#login-username")).to_be_visible()
    assert page.js_errors == []


def in_english(page):
    """The customer picks English on the start screen (the page comes back in it, still logged in)."""
    page.locator("#start-language button[value=en]").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#start-title")).to_have_text("Order here")


def test_the_next_customer_starts_in_portuguese_whatever_the_last_one_chose(kiosk):
    page = kiosk("?idle=3&idle_warning=2")
    expect(page.locator("#start-title")).to_have_text("Peça aqui")
    in_english(page)
    start_order(page, "takeaway")
    expect(page.locator("#menu-title")).to_have_text("Menu")
    add_plain(page, "Bebida", "Água mineral")
    to_summary(page)
    order = Order.objects.get()

    # The customer gives up: the order is cancelled and the start screen speaks Portuguese again.
    page.click("#summary-change")
    expect(page.locator("#view-cart")).to_be_visible()
    page.click("[data-action=menu]")
    page.locator("#view-menu [data-action=cancel-order]").click()
    page.click("#cancel-yes")
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    expect(page.locator("#start-title")).to_have_text("Peça aqui")
    expect(page.locator("#start-button")).to_be_visible()
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED

    # Someone picks English and walks away without starting: the kiosk goes back to Portuguese by itself.
    in_english(page)
    expect(page.locator("html")).to_have_attribute("lang", "pt-br", timeout=8_000)
    expect(page.locator("#start-title")).to_have_text("Peça aqui")
    # And it stays so: no reload loop on the start screen in its own language.
    page.evaluate("window.stillTheSamePage = true")
    page.wait_for_timeout(4_000)
    assert page.evaluate("window.stillTheSamePage") is True
    assert_clean(page)
