"""The staff and public screens in Chromium: the kitchen display advances a paid order one tap at a time while
the pickup board follows it, and the counter finds an unpaid order by its number and takes cash for it, once,
however often the button is pressed or the answer is lost. The database is checked after each step."""

import re
import time
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from orders.models import Option, Order, Product, Store, Terminal
from orders.services import ItemRequest, OptionRequest, order_advance, order_place
from payments.models import Payment
from payments.services.checkout import order_pay_at_counter
from tests.browser.conftest import screenshot, watch_errors
from tests.conftest import client_for, new_key, place

pytestmark = pytest.mark.django_db(transaction=True)
S = Order.Status


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def wait_for(predicate, *, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def status_of(number: int) -> str:
    return Order.objects.get(number=number, store__slug="loja-centro").status


@pytest.fixture
def demo(settings):
    """The demo's stores, menu and logins (kitchen1, cashier1, kiosk1 at Loja Centro)."""
    call_command("seed_demo", force=True, stdout=open("/dev/null", "w"))  # noqa: SIM115
    return Terminal.objects.select_related("store").get(external_pos_id="KIOSK001")


def option(product: str, group: str, name: str) -> int:
    return Option.objects.get(group__product__name=product, group__name=group, name=name).pk


def product(name: str) -> int:
    return Product.objects.get(name=name).pk


def combo_line(note: str = "") -> dict:
    """Combo X-Burger as a kiosk sends it: the burger without onion, large fries, orange juice."""
    return {
        "product_id": product("Combo X-Burger"),
        "quantity": 1,
        "note": note,
        "options": [
            {
                "option_id": option("Combo X-Burger", "Lanche", "X-Burger"),
                "options": [{"option_id": option("X-Burger", "Retirar", "Cebola")}],
            },
            {"option_id": option("Combo X-Burger", "Acompanhamento", "Batata grande")},
            {"option_id": option("Combo X-Burger", "Bebida", "Suco de laranja")},
        ],
    }


def _combo_choices() -> tuple[OptionRequest, ...]:
    line = combo_line()
    return tuple(
        OptionRequest(o["option_id"], options=tuple(OptionRequest(p["option_id"]) for p in o.get("options", ())))
        for o in line["options"]
    )


def paid_at_counter(terminal, items, dining) -> Order:
    """A paid order, quickly: placed at the kiosk and paid with a card machine (the service the counter uses)."""
    order = order_place(terminal=terminal, items=items, dining=dining)
    order_pay_at_counter(order_id=order.pk, method="card_outside", amount=order.total, actor="test")
    return Order.objects.get(pk=order.pk)


def login(page, url: str, username: str):
    page.goto(url)
    page.fill("#login-username", username)
    page.fill("#login-password", username)
    page.click("#login-form button[type=submit]")


def test_the_kitchen_advances_a_paid_order_and_the_pickup_board_follows(
    live_server, browser, browser_context, demo, mercadopago
):
    terminal = demo
    # Lunch: one order being prepared for a while (late), one ready, ours paid through Mercado Pago, one more.
    late = paid_at_counter(
        terminal,
        [
            ItemRequest(
                product("X-Bacon"),
                1,
                options=(
                    OptionRequest(option("X-Bacon", "Ponto da carne", "Bem passado")),
                    OptionRequest(option("X-Bacon", "Adicionais", "Queijo extra")),
                ),
            )
        ],
        "takeaway",
    )
    order_advance(order_id=late.pk, status=S.IN_PREPARATION)
    Order.objects.filter(pk=late.pk).update(received_at=timezone.now() - timedelta(minutes=12))
    ready = paid_at_counter(
        terminal, [ItemRequest(product("Veggie Burger"), 1), ItemRequest(product("Água mineral"), 1)], "eat_in"
    )
    order_advance(order_id=ready.pk, status=S.IN_PREPARATION)
    order_advance(order_id=ready.pk, status=S.READY)
    bacon = option("X-Burger", "Adicionais", "Bacon")
    preparing = paid_at_counter(
        terminal, [ItemRequest(product("X-Burger"), 1, options=(OptionRequest(bacon),))], "eat_in"
    )
    order_advance(order_id=preparing.pk, status=S.IN_PREPARATION)

    kiosk = client_for(User.objects.get(username="kiosk1"))
    ours = place(kiosk, [combo_line(note="Suco sem gelo")], dining="eat_in").json()
    payment = kiosk.post(f"/api/v1/orders/{ours['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.deliver()
    number = ours["number"]
    assert status_of(number) == S.RECEIVED
    paid_at_counter(terminal, [ItemRequest(product("X-Salada"), 2, note="Sem tomate")], "takeaway")

    # The pickup board, public, on the dining room's TV: not ours yet (paid, not being prepared).
    tv = browser_context.new_page()
    tv_errors = watch_errors(tv)
    tv.set_viewport_size({"width": 1600, "height": 900})
    tv.goto(f"{live_server.url}/pickup/loja-centro/")
    expect(tv.locator(f'#ready [data-number="{ready.number}"]')).to_be_visible()
    expect(tv.locator(f'#preparing [data-number="{late.number}"]')).to_be_visible()
    expect(tv.locator(f'[data-number="{number}"]')).to_have_count(0)
    # The TV asks every few seconds, cheaply: while no number moves, 304 to its If-None-Match.
    unchanged = tv.wait_for_event(
        "response", lambda r: "/api/v1/pickup-board/" in r.url and r.status == 304, timeout=10_000
    )
    assert unchanged.request.headers.get("if-none-match")

    # The kitchen display on a device whose clock is in Tokyo: times are still the store's (São Paulo).
    kitchen_context = browser.new_context(
        locale="pt-BR", timezone_id="Asia/Tokyo", viewport={"width": 1600, "height": 1000}
    )
    kitchen_context.set_default_timeout(15_000)
    kitchen = kitchen_context.new_page()
    kitchen_errors = watch_errors(kitchen)
    login(kitchen, f"{live_server.url}/kitchen/", "kitchen1")
    card = kitchen.locator(f'.card[data-number="{number}"]')
    received = kitchen.locator(f'[data-cards="received"] .card[data-number="{number}"]')
    expect(received).to_be_visible()
    for text in ("Combo X-Burger", "Lanche: X-Burger", "Retirar: Cebola", "Batata grande", "Suco de laranja"):
        expect(received).to_contain_text(text)
    expect(received.locator(".note")).to_contain_text("Suco sem gelo")
    expect(received.locator(".dining-eat_in")).to_be_visible()
    paid = Order.objects.get(number=number, store=terminal.store).received_at
    expect(received.locator(".placed")).to_contain_text(
        paid.astimezone(ZoneInfo("America/Sao_Paulo")).strftime("%H:%M")
    )
    expect(kitchen.locator(f'.card[data-number="{late.number}"]')).to_have_class(re.compile(r"\blate\b"))
    expect(kitchen.locator(f'.card[data-number="{late.number}"] .age')).to_contain_text("12")
    expect(kitchen.locator(f'[data-cards="ready"] .card[data-number="{ready.number}"]')).to_be_visible()
    # It keeps asking, cheaply: while nothing moves, the queue answers 304 to its If-None-Match.
    unchanged = kitchen.wait_for_event(
        "response", lambda r: "/api/v1/kitchen/orders/" in r.url and r.status == 304, timeout=10_000
    )
    assert unchanged.request.headers.get("if-none-match")
    kitchen.click("#sound")
    expect(kitchen.locator("#sound")).to_have_attribute("aria-pressed", "true")
    screenshot(kitchen, "kitchen")

    # One tap: in preparation, in the database and on the TV.
    card.locator("button.advance").click()
    expect(kitchen.locator(f'[data-cards="in_preparation"] .card[data-number="{number}"]')).to_be_visible()
    wait_for(lambda: status_of(number) == S.IN_PREPARATION)
    expect(tv.locator(f'#preparing [data-number="{number}"]')).to_be_visible()

    # Another tap: ready; the TV shows it under "ready", highlighted as just called.
    card.locator("button.advance").click()
    expect(kitchen.locator(f'[data-cards="ready"] .card[data-number="{number}"]')).to_be_visible()
    wait_for(lambda: status_of(number) == S.READY)
    called = tv.locator(f'#ready [data-number="{number}"]')
    expect(called).to_be_visible()
    expect(called).to_have_class(re.compile(r"\bnew\b"))
    expect(tv.locator(f'#preparing [data-number="{number}"]')).to_have_count(0)
    expect(tv.locator(f'#ready [data-number="{ready.number}"]')).not_to_have_class(re.compile(r"\bnew\b"))
    screenshot(tv, "pickup")
    # Large enough to read across the room: in preparation at least 7% of the TV's height, ready half as large again.
    size = "s => parseFloat(getComputedStyle(document.querySelector(s)).fontSize)"
    preparing_size, ready_size = tv.evaluate(f"['#preparing .number', '#ready .number'].map({size})")
    assert preparing_size >= 900 * 0.07 and ready_size >= 1.5 * preparing_size

    # A new order comes in while the kitchen watches: it shows up by itself, highlighted, with a beep.
    beeps = int(kitchen.evaluate("document.body.dataset.beeps || '0'"))
    another = paid_at_counter(terminal, [ItemRequest(product("X-Burger"), 1)], "takeaway")
    fresh = kitchen.locator(f'[data-cards="received"] .card[data-number="{another.number}"]')
    expect(fresh).to_be_visible()
    expect(fresh).to_have_class(re.compile(r"\bnew\b"))
    assert int(kitchen.evaluate("document.body.dataset.beeps || '0'")) == beeps + 1

    # Handed over: off the kitchen display and off the TV.
    card.locator("button.advance").click()
    expect(card).to_have_count(0)
    wait_for(lambda: status_of(number) == S.COMPLETED)
    expect(tv.locator(f'[data-number="{number}"]')).to_have_count(0)
    assert Order.objects.get(number=number, store=terminal.store).payments.count() == 1

    assert kitchen_errors == [] and tv_errors == []
    kitchen_context.close()


def test_the_counter_finds_an_unpaid_order_and_takes_cash_once(live_server, browser, demo):
    terminal = demo
    kiosk = client_for(User.objects.get(username="kiosk1"))
    # Earlier today: orders paid and moving through the kitchen, one handed over.
    for items, steps in (
        ([ItemRequest(product("X-Salada"), 1)], [S.IN_PREPARATION, S.READY, S.COMPLETED]),
        ([ItemRequest(product("Combo X-Burger"), 1, options=_combo_choices())], [S.IN_PREPARATION, S.READY]),
        ([ItemRequest(product("Onion rings"), 2), ItemRequest(product("Água mineral"), 2)], [S.IN_PREPARATION]),
    ):
        earlier = paid_at_counter(terminal, items, "takeaway")
        for step in steps:
            order_advance(order_id=earlier.pk, status=step)
    x_burger, juice = product("X-Burger"), product("Suco de laranja")
    unpaid = place(
        kiosk,
        [
            {
                "product_id": x_burger,
                "quantity": 2,
                "options": [{"option_id": option("X-Burger", "Adicionais", "Bacon")}],
            },
            {"product_id": juice, "quantity": 1},
        ],
        dining="takeaway",
    ).json()
    assert unpaid["status"] == S.AWAITING_PAYMENT and unpaid["total"] == "69.70"
    number = unpaid["number"]

    context = browser.new_context(
        locale="pt-BR", timezone_id="America/Sao_Paulo", viewport={"width": 1440, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = watch_errors(page)
    login(page, f"{live_server.url}/counter/", "cashier1")

    # Today's orders: both, with their status.
    rows = page.locator("#today-rows tr")
    expect(rows).to_have_count(4)
    expect(page.locator(f'#today-rows tr[data-number="{number}"] .status-awaiting_payment')).to_be_visible()

    # A number that does not exist today: said so, nothing shown.
    page.fill("#find-number", "999")
    page.click("#find-form button[type=submit]")
    expect(page.locator("#find-error")).to_be_visible()
    expect(page.locator("#find-error")).to_contain_text("999")
    expect(page.locator("#order")).to_be_hidden()

    page.fill("#find-number", str(number))
    page.press("#find-number", "Enter")
    panel = page.locator("#order")
    expect(panel).to_contain_text("X-Burger")
    expect(panel).to_contain_text("Adicionais: Bacon")
    expect(panel).to_contain_text("Suco de laranja")
    expect(panel.locator(".total")).to_have_text(re.compile(r"R\$\s69,70"))
    expect(panel.locator(".badge.status-awaiting_payment")).to_be_visible()

    # Cash: 100,00 received, 30,30 change (shown only; the API is sent the total).
    page.fill("#cash-received", "100,00")
    expect(page.locator("#cash-change")).to_have_text(re.compile(r"R\$\s30,30"))
    page.fill("#cash-received", "50")
    expect(panel.locator(".pay .field-error")).to_contain_text("19,70")
    expect(panel.locator(".pay-button")).to_be_disabled()
    page.fill("#cash-received", "100,00")
    screenshot(page, "counter")

    # The answer to the first press is lost on the way back (the payment was recorded); the cashier presses
    # again, twice quickly: the same attempt's key, so the order is paid once.
    sent: list[tuple[str | None, str]] = []

    def lose_first_answer(route):
        sent.append((route.request.headers.get("idempotency-key"), route.request.post_data or ""))
        response = route.fetch()
        if len(sent) == 1:
            route.abort("connectionreset")
        else:
            route.fulfill(response=response)

    page.route(re.compile(r".*/counter-payment/$"), lose_first_answer)
    page.click(".pay-button")
    expect(panel.locator(".order-message.error")).to_contain_text(re.compile(r"\S"))
    wait_for(lambda: Payment.objects.filter(order_id=unpaid["id"]).count() == 1)
    assert status_of(number) == S.RECEIVED
    page.dblclick(".pay-button")
    expect(panel.locator(".message.success")).to_be_visible()
    expect(panel.locator(".message.success")).to_contain_text("30,30")
    expect(panel.locator(".badge.status-received")).to_be_visible()
    expect(panel.locator(".pay-button")).to_have_count(0)

    assert len(sent) == 2 and sent[0] == sent[1]  # the double click sent one request, with the first key
    payments = list(Payment.objects.filter(order_id=unpaid["id"]))
    assert [(p.provider, p.method, p.amount, p.status) for p in payments] == [
        ("counter", "cash", Decimal("69.70"), "approved")
    ]
    assert status_of(number) == S.RECEIVED
    expect(page.locator(f'#today-rows tr[data-number="{number}"] .status-received')).to_be_visible()
    # The one answer the test cut off is the only thing the browser complained about.
    assert [e for e in errors if "ERR_CONNECTION_RESET" not in e] == []
    context.close()


def clock_in(zone: str) -> re.Pattern:
    """The time now in `zone` as the screens' clocks show it (this minute or the next, if it turns meanwhile)."""
    now = timezone.now()
    shown = {(now + timedelta(minutes=m)).astimezone(ZoneInfo(zone)).strftime("%H:%M") for m in (0, 1)}
    return re.compile("|".join(shown))


def test_the_kitchen_and_the_counter_know_their_store_before_any_order(live_server, browser, demo):
    """No order yet today: the kitchen display and the counter still name their store and keep its time (from
    GET /me/), on a device whose clock is in Tokyo; a manager's screen about one store (?store=) does the same
    and lists only that store's orders."""
    Store.objects.filter(slug="loja-aeroporto").update(time_zone="America/Manaus")
    assert not Order.objects.exists()

    def screen(path: str, username: str):
        context = browser.new_context(locale="pt-BR", timezone_id="Asia/Tokyo", viewport={"width": 1440, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        watch_errors(page)
        login(page, f"{live_server.url}{path}", username)
        return context, page

    for path, username, store, zone in (
        ("/kitchen/", "kitchen1", "Loja Centro", "America/Sao_Paulo"),
        ("/kitchen/?store=loja-aeroporto", "manager1", "Loja Aeroporto", "America/Manaus"),
        ("/counter/", "cashier1", "Loja Centro", "America/Sao_Paulo"),
    ):
        context, page = screen(path, username)
        expect(page.locator("#store-name")).to_contain_text(store)
        expect(page.locator("#clock")).to_have_text(clock_in(zone))
        # Logged in, the language switch is in the top bar, not in the corner over the cards.
        expect(page.locator(".topbar .language-switch select")).to_have_value("pt-br")
        expect(page.locator(".screen-language")).to_be_hidden()
        assert page.js_errors == [], (path, page.js_errors)
        context.close()

    # A manager at the airport's counter: today's orders there, not the centre's.
    centre = place(
        client_for(User.objects.get(username="kiosk1")),
        [{"product_id": product("X-Burger"), "quantity": 1}],
        dining="takeaway",
    )
    airport = place(
        client_for(User.objects.get(username="kiosk2")), [{"product_id": product("X-Burger"), "quantity": 1}]
    )
    context, page = screen("/counter/?store=loja-aeroporto", "manager1")
    expect(page.locator("#store-name")).to_contain_text("Loja Aeroporto")
    expect(page.locator("#who")).to_have_text("manager1")
    expect(page.locator("#today-rows tr")).to_have_count(1)
    expect(page.locator(f'#today-rows tr[data-number="{airport.json()["number"]}"]')).to_be_visible()
    placed = Order.objects.get(pk=airport.json()["id"]).created_at.astimezone(ZoneInfo("America/Manaus"))
    expect(page.locator("#today-rows tr td").nth(1)).to_have_text(placed.strftime("%H:%M"))
    assert centre.status_code == 201 and page.js_errors == []
    context.close()


def test_the_pickup_board_switches_to_english_and_back(live_server, page, demo):
    """A pt-BR browser: the board reads in Portuguese; the language switch turns it to English (the page, its
    scripts' words and the API's answers), the choice stays on a reload, and it switches back."""
    board = f"{live_server.url}/pickup/loja-centro/"
    page.goto(board)
    switch = page.locator(".board-head .language-switch select")
    expect(page.locator("#lane-preparing")).to_have_text("Em preparação")
    expect(page.locator("#lane-ready")).to_have_text("Pronto")
    expect(switch).to_have_value("pt-br")

    with page.expect_request(lambda r: "/api/v1/pickup-board/" in r.url) as polled:
        switch.select_option("en")
    expect(page).to_have_url(board)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#lane-preparing")).to_have_text("In preparation")
    expect(page.locator("#lane-ready")).to_have_text("Ready")
    # The scripts' catalogue follows (its formats too: Django's JavaScript catalogue carries them).
    assert page.evaluate("get_format('DECIMAL_SEPARATOR')") == "."
    assert polled.value.headers["accept-language"] == "en"
    page.reload()
    expect(page.locator("#lane-preparing")).to_have_text("In preparation")
    expect(switch).to_have_value("en")
    screenshot(page, "pickup-english")

    switch.select_option("pt-br")
    expect(page.locator("#lane-preparing")).to_have_text("Em preparação")
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    assert page.evaluate("get_format('DECIMAL_SEPARATOR')") == ","
    assert page.js_errors == []
