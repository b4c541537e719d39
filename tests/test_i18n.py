"""Portuguese everywhere a person reads (issue 12): the catalogue is complete, the back office's pages, the reports,
the lockout page and the simulator's pay page show none of its English for a Brazilian browser, money is typed and
shown as people write it, times are in the store's zone, and the API's problem details follow Accept-Language.

"Untranslated English" is derived from the catalogue itself (locale/pt_BR/LC_MESSAGES/*.po): every message whose
Portuguese differs from its English must not be visible on a page rendered for `Accept-Language: pt-BR`.
"""

import datetime
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import trans_real

from kiosk.events.models import WebhookEndpoint
from kiosk.models import WorkerHeartbeat
from orders.models import Option, OptionGroup, Order, Product, Store, Terminal
from payments.models import Payment, Refund
from tests.conftest import BROWSER_ENVIRON, client_for, make_user, new_key, place, staff_of, store_named

pytestmark = pytest.mark.django_db(transaction=True)

BASE = Path(__file__).resolve().parent.parent
CATALOGUES = sorted((BASE / "locale" / "pt_BR" / "LC_MESSAGES").glob("*.po"))
PT_BR = {"HTTP_ACCEPT_LANGUAGE": "pt-BR,pt;q=0.9"}  # a Brazilian browser
# The apps whose admin pages are ours (django-tasks-db's task results are shown by our own TaskResultAdmin).
OUR_APPS = {"orders", "payments", "kiosk", "events", "mp_simulator", "django_tasks_database", "auth", "axes"}


# --- The catalogue --------------------------------------------------------------------------------


@dataclass
class Message:
    msgid: str
    context: str | None = None
    plural: str | None = None
    translations: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    def pairs(self) -> list[tuple[str, str]]:
        """(English, Portuguese) as a page may show them: the singular and the plural form."""
        if self.plural is None:
            return [(self.msgid, self.translations[0] if self.translations else "")]
        return [(self.msgid, self.translations[0]), (self.plural, self.translations[-1])]


def read_po(path: Path) -> list[Message]:
    """The messages of a .po file (the header excluded): enough of the format for our catalogues."""
    messages: list[Message] = []
    current, last = None, None

    def finish():
        if current is not None and current.msgid != "":
            messages.append(current)

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current is not None and current.msgid and not current.translations:
                continue  # a blank line inside an entry (before its msgstr): msgfmt reads on
            finish()
            current, last = None, None
            continue
        if current is None:
            current = Message(msgid="")
        if line.startswith("#~"):
            current.obsolete = True
            continue
        if line.startswith("#,"):
            current.flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if line.startswith('"'):
            value = json.loads(line)
            if last == "msgid":
                current.msgid += value
            elif last == "msgctxt":
                current.context += value
            elif last == "msgid_plural":
                current.plural += value
            else:
                current.translations[-1] += value
            continue
        value = json.loads(rest)
        if keyword == "msgid":
            current.msgid, last = value, "msgid"
        elif keyword == "msgctxt":
            current.context, last = value, "msgctxt"
        elif keyword == "msgid_plural":
            current.plural, last = value, "msgid_plural"
        elif keyword.startswith("msgstr"):
            current.translations.append(value)
            last = "msgstr"
        else:
            raise ValueError(f"{path}: cannot read {line!r}")
    finish()
    return messages


PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|%[sd]|\{\w+\}")


def test_there_is_a_brazilian_portuguese_catalogue():
    assert [path.name for path in CATALOGUES][:1] == ["django.po"]
    assert (BASE / "locale" / "pt_BR" / "LC_MESSAGES" / "django.mo").exists()  # compiled (make, or the conftest)


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.name)
def test_every_message_has_a_portuguese_translation(path):
    messages = read_po(path)
    assert len(messages) > 100
    for message in messages:
        assert not message.obsolete, f"{path.name}: obsolete entry {message.msgid!r} (run makemessages)"
        assert "fuzzy" not in message.flags, f"{path.name}: fuzzy translation of {message.msgid!r}"
        assert message.translations and all(t.strip() for t in message.translations), f"untranslated {message.msgid!r}"
        for english, portuguese in message.pairs():
            assert sorted(PLACEHOLDER.findall(english)) == sorted(PLACEHOLDER.findall(portuguese)), english
    header = path.read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert "Language: pt_BR" in header and "Plural-Forms: nplurals=2; plural=(n > 1);" in header


def test_the_third_party_words_in_our_back_office_are_in_the_catalogue():
    from kiosk import third_party_words

    catalogue = {(m.context, m.msgid) for m in read_po(CATALOGUES[0])}
    words = [str(word) for word in third_party_words.AXES + third_party_words.TASKS]
    assert {word for word in words if not any(word == msgid for _, msgid in catalogue)} == set()
    with translation.override("pt-br"):
        assert str(third_party_words.TASKS[-1]) == "Concluída"  # pgettext("Task", "Successful")


# --- What a page shows ----------------------------------------------------------------------------


class VisibleText(HTMLParser):
    """The words a person sees on a page: text and the attributes browsers show (title, placeholder, alt,
    aria-label, a button's value). Left out: scripts and styles, machine text (<code>, <pre>: codes, payloads,
    tracebacks), and anything marked as written in another language (lang="en": notes stored as the system
    wrote them)."""

    QUIET = {"script", "style", "template", "code", "pre", "kbd", "samp", "textarea"}
    # Django stores permission names in English when it creates them ("Can add order"), whatever the language:
    # its own limitation, left out with the permission pickers of the user and group pages.
    QUIET_FIELDS = {"permissions", "user_permissions", "permissions_old", "user_permissions_old"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.nodes: list[str] = []
        self._quiet: list[list] = []  # [tag, depth] of the element that silenced the text

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._quiet:
            if tag == self._quiet[-1][0] and tag not in self.VOID:
                self._quiet[-1][1] += 1
            return
        lang = (attrs.get("lang") or "pt").lower()
        quiet_field = tag == "select" and attrs.get("name") in self.QUIET_FIELDS
        if tag in self.QUIET or quiet_field or not (lang.startswith("pt") or tag == "html"):
            if tag not in self.VOID:
                self._quiet.append([tag, 1])
            return
        for name in ("title", "placeholder", "alt", "aria-label"):
            if attrs.get(name):
                self.nodes.append(attrs[name])
        if tag == "input" and attrs.get("type") in {"submit", "button", "reset"} and attrs.get("value"):
            self.nodes.append(attrs["value"])

    def handle_startendtag(self, tag, attrs):
        if tag not in self.VOID:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)
        else:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if self._quiet and tag == self._quiet[-1][0]:
            self._quiet[-1][1] -= 1
            if self._quiet[-1][1] == 0:
                self._quiet.pop()

    def handle_data(self, data):
        if not self._quiet:
            self.nodes.append(data)


def _is_data(text: str) -> bool:
    """JSON shown as it is stored (an audit record's before/after, a delivery's headers): data, not words."""
    if not text.startswith(("{", "[")):
        return False
    try:
        return isinstance(json.loads(text), dict | list)
    except ValueError:
        return False


def visible_nodes(page: str) -> list[str]:
    parser = VisibleText()
    parser.feed(page)
    nodes = (" ".join(node.split()) for node in parser.nodes)
    return [node for node in nodes if node and not _is_data(node)]


def _shown(message: str) -> str:
    """A message as a page shows it (its markup gone, the words of its <code> left out, as on the page)."""
    return " ".join(" ".join(visible_nodes(message)).split())


@dataclass
class Leftover:
    english: str
    exact_only: bool  # a single word: looked for as a whole label, cell or button, not inside sentences
    pattern: re.Pattern


def _leftovers() -> list[Leftover]:
    """The catalogue's English that a Portuguese page must not show: each message whose translation differs,
    unless the English is also Portuguese text of some catalogue (Django's and ours: "Total", "Item"). Looked for
    as written (only a lower-case first letter may be capitalised), its placeholders standing for any text."""
    portuguese = {
        _shown(str(text)).lower()
        for _, text in trans_real.translation("pt-br")._catalog.items()  # every installed catalogue, ours first
    }
    found = []
    for path in CATALOGUES:
        for message in read_po(path):
            for english, translated in message.pairs():
                shown = _shown(english)
                if not PLACEHOLDER.sub("", shown).strip(" .,:;()-#'\"") or shown.lower() in portuguese:
                    continue
                if english == translated:
                    continue
                # A placeholder at either end stands for anything: only the words between matter.
                fixed = PLACEHOLDER.sub("\0", shown).strip("\0")
                body = ".{1,80}?".join(re.escape(part) for part in fixed.split("\0"))
                if fixed[0].islower():  # a verbose name may be shown capitalised ("Created at")
                    body = f"[{fixed[0]}{fixed[0].upper()}]" + body[1:]
                # Not inside a code-like token (order.placed, delivery-1, awaiting_payment).
                start = r"(?<![\w.\-])" if re.match(r"\w", fixed) else ""
                end = r"(?![\w\-]|\.\w)" if re.search(r"\w$", fixed) else ""
                single = " " not in shown and not PLACEHOLDER.search(shown)
                if not single and len(re.findall(r"[^\W\d_]{2,}", fixed)) < 2:
                    continue  # "Pay %(total)s", "%(done)d of %(most)d": too little to tell English by
                found.append(Leftover(english, single, re.compile(start + body + end)))
    return found


def untranslated(page: str, leftovers: list[Leftover], *, context: bool = False) -> list[str]:
    """The catalogue's English on the page (with `context`: each with the text around it)."""
    nodes = visible_nodes(page)
    text = " ".join(nodes)
    labels = {node.rstrip(":*").strip() for node in nodes}
    hits = []
    for leftover in leftovers:
        if leftover.exact_only:
            word = _shown(leftover.english)
            if word in labels or word[:1].upper() + word[1:] in labels:
                hits.append(leftover.english)
        elif found := leftover.pattern.search(text):
            around = f" in …{text[max(0, found.start() - 40) : found.end() + 40]}…" if context else ""
            hits.append(leftover.english + around)
    return list(dict.fromkeys(hits))


def test_the_visible_text_reader_sees_what_a_person_sees():
    page = (
        '<html lang="pt-br"><head><title>Pedidos</title><style>.a{}</style></head><body>'
        '<h1 title="Dica">Selecione <em>pedido</em></h1><input type="submit" value="Ir"><br>'
        '<pre>{"status": "approved"}</pre><code>awaiting_payment</code><span lang="en">order #1 paid</span>'
        '<div class="readonly">{"status": "received"}</div><p>Fim</p></body></html>'
    )
    assert visible_nodes(page) == ["Pedidos", "Dica", "Selecione", "pedido", "Ir", "Fim"]
    leftovers = _leftovers()
    assert untranslated("<p>Select order to change: Awaiting payment</p>", leftovers) == ["Awaiting payment"]
    assert "order" in untranslated("<th>Order</th>", leftovers)  # a column left in English
    assert untranslated("<td>order.placed</td><td>delivery-1</td>", leftovers) == []  # codes, not words
    sentence = "<li>Skipped 2 still pending: the worker is on them already.</li>"
    assert untranslated(sentence, leftovers) == ["Skipped %(count)d still pending: the worker is on them already."]


# --- The data the pages show ----------------------------------------------------------------------


@pytest.fixture
def back_office(migration_data, kiosk, menu, mercadopago, settings):
    """A day of a restaurant with two stores (São Paulo, Manaus): a combo with options, a paid order refunded in
    part, a payment held for review, an unpaid order, events and deliveries, audit records, a task, a worker."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    store_named("Loja Manaus", time_zone="America/Manaus", offers_eat_in=True)
    burger = menu["burger"]
    extras = OptionGroup.objects.create(product=burger, name="Adicionais", min_choices=0, max_choices=2)
    bacon = Option.objects.create(group=extras, name="Bacon", price=Decimal("4.00"))
    combo = Product.objects.create(category=menu["lanche"], name="Combo X", kind="combo", price=Decimal("39.90"))
    drink = OptionGroup.objects.create(product=combo, name="Bebida", min_choices=1, max_choices=1)
    Option.objects.create(group=drink, name="Suco", product=menu["juice"], price=Decimal("2.50"))
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/eventos", events=["*"], description="ERP da loja")

    def checkout(order):
        return kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]

    lines = [{"product_id": burger.pk, "quantity": 2, "options": [{"option_id": bacon.pk}], "note": "sem cebola"}]
    paid_order = place(kiosk, lines, customer_cpf="529.982.247-25", cpf_on_receipt=True).json()
    mercadopago.pay(checkout(paid_order)["provider_order_id"])
    flagged_order = place(kiosk, [{"product_id": burger.pk, "quantity": 1}]).json()
    mercadopago.pay(checkout(flagged_order)["provider_order_id"], paid_amount="25.00")
    mercadopago.deliver()
    unpaid = place(kiosk, [{"product_id": burger.pk, "quantity": 1}]).json()
    boss = User.objects.create_superuser("gerente", password="gerente")
    manager = Client(**PT_BR)
    manager.force_login(boss)
    paid = Payment.objects.get(order_id=paid_order["id"])
    manager.post(  # an audited action, and a refund of part of it
        "/admin/orders/order/", {"action": "start_preparing", "_selected_action": [paid_order["id"]]}
    )
    from payments.services.refunds import refund_request

    refund_request(payment_id=paid.pk, amount=Decimal("5.00"), reason="batata fria", actor="gerente")
    mercadopago.settle()
    WorkerHeartbeat.objects.create(
        worker_id="w1", hostname="cozinha", pid=1, started_at=timezone.now(), seen_at=timezone.now()
    )
    return {
        "manager": manager,
        "paid": Payment.objects.get(pk=paid.pk),
        "flagged": Payment.objects.get(order_id=flagged_order["id"]),
        "unpaid": unpaid,
        "boss": boss,
    }


def _admin_pages() -> list[str]:
    """Every changelist, a change page and the add page (where there is one) of our models' admins."""
    urls = ["/admin/"]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if opts.app_label not in OUR_APPS:
            continue
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        row = model._default_manager.order_by("pk").last()
        if row is not None:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(row.pk)]))
        if type(model_admin).has_add_permission is not admin.ModelAdmin.has_add_permission:
            continue  # read-only or made elsewhere (orders come from kiosks)
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    return urls


def test_the_back_office_reads_entirely_in_portuguese(back_office):
    manager, leftovers = back_office["manager"], _leftovers()
    paid, flagged = back_office["paid"], back_office["flagged"]
    store = Store.objects.get(slug="loja-1")
    pages = {url: manager.get(url) for url in _admin_pages()}
    extra = [
        f"/admin/orders/order/?store__id__exact={store.pk}",
        "/admin/payments/payment/?needs_review__exact=1",
        f"/admin/payments/payment/{paid.pk}/refund/",
        f"/admin/payments/payment/review/?ids={flagged.pk}",
        f"/admin/orders/order/counter-payment/?ids={back_office['unpaid']['id']}",
        "/admin/reports/sales/",
        "/admin/reports/sales/?store=loja-1",
        "/admin/reports/sales/?start=2025-03-14&end=2025-03-13",  # an error, in Portuguese too
    ]
    pages.update({url: manager.get(url) for url in extra})
    # The actions' own pages and messages.
    pages["action: mark ready"] = manager.post(
        "/admin/orders/order/",
        {"action": "mark_ready", "_selected_action": [paid.order_id, flagged.order_id]},
        follow=True,
    )
    pages["action: delete endpoints"] = manager.post(
        "/admin/events/webhookendpoint/",
        {"action": "delete_selected", "_selected_action": list(WebhookEndpoint.objects.values_list("pk", flat=True))},
    )
    pages["action: sync"] = manager.post(
        "/admin/payments/payment/", {"action": "sync_with_mercadopago", "_selected_action": [paid.pk]}, follow=True
    )
    pages["action: refund, refused"] = manager.post(
        f"/admin/payments/payment/{paid.pk}/refund/",
        {"amount": "999,00", "reason": "", "confirm_order_number": "0", "form_key": "0" * 32},
    )
    pages["action: review, refused"] = manager.post(
        f"/admin/payments/payment/review/?ids={flagged.pk}", {"ids": str(flagged.pk), "comment": ""}
    )
    assert len(pages) > 60
    problems = {}
    for url, response in pages.items():
        assert response.status_code == 200, (url, response.status_code)
        page = response.content.decode()
        assert '<html lang="pt-br"' in page, url
        if hits := untranslated(page, leftovers, context=True):
            problems[url] = hits
    assert problems == {}, "\n".join(f"{url}: {hits}" for url, hits in problems.items())


def test_the_lockout_page_is_in_portuguese(settings):
    make_user("gerente9", "manager", is_staff=True)
    browser = Client(REMOTE_ADDR="203.0.113.20", **PT_BR)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        browser.post("/admin/login/", {"username": "gerente9", "password": "palpite"})
    locked = browser.post("/admin/login/", {"username": "gerente9", "password": "gerente9"})
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Tentativas de login demais" in page and "15 minutos" in page
    assert untranslated(page, _leftovers()) == []


def test_error_pages_outside_the_api_are_portuguese_pages_and_the_api_keeps_problem_json(settings):
    # With DEBUG off (production), a wrong address or a crash under the back office shows a page a cashier reads.
    settings.DEBUG = False
    browser = Client(raise_request_exception=False, **PT_BR)
    missing = browser.get("/admin-typo/pedidos/")
    assert missing.status_code == 404 and missing["Content-Type"].startswith("text/html")
    page = missing.content.decode()
    assert "Página não encontrada" in page and '<html lang="pt-br"' in page and 'href="/admin/"' in page
    assert untranslated(page, _leftovers()) == []
    api = browser.get("/api/v1/no-such-thing/")
    assert api.status_code == 404 and api["Content-Type"] == "application/problem+json"
    from django.template.loader import render_to_string

    with translation.override("pt-br"):
        for name, words in {
            "400.html": "Requisição inválida",
            "403.html": "Acesso não permitido",
            "500.html": "Algo deu errado",
        }.items():
            rendered = render_to_string(name)
            assert words in rendered and untranslated(rendered, _leftovers()) == [], name


def test_the_simulators_pay_page_is_in_the_buyers_language(kiosk, order, mercadopago):
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    url = f"/mp-simulator/pay/{payment['provider_order_id']}/"
    phone = Client(**PT_BR)
    page = phone.get(url).content.decode()
    assert '<html lang="pt-br">' in page and "Pagar R$ 61,70" in page and "Aguardando pagamento" in page
    assert untranslated(page, _leftovers()) == []
    english = Client(HTTP_ACCEPT_LANGUAGE="en").get(url).content.decode()
    assert "Pay R$ 61.70" in english and "Awaiting payment" in english
    missing = phone.get("/mp-simulator/pay/ORD01JQ4S4KY8HWQ6NA5PXB65B3D3/")
    assert missing.status_code == 404 and "Pedido não encontrado" in missing.content.decode()


# --- Money typed and shown as people write it ------------------------------------------------------


def test_staff_type_and_read_amounts_the_brazilian_way(back_office):
    manager, paid = back_office["manager"], back_office["paid"]
    url = f"/admin/payments/payment/{paid.pk}/refund/"
    page = manager.get(url).content.decode()
    refundable = paid.paid_amount - Decimal("5.00")  # the refund of 5.00 made by the fixture
    shown = f"{refundable:.2f}".replace(".", ",")
    assert f'value="{shown}"' in page and f"No máximo {shown}" in page
    key = re.search(r'name="form_key" value="([0-9a-f]{32})"', page)[1]
    number = Order.objects.get(pk=paid.order_id).number
    done = manager.post(url, {"amount": "10,00", "reason": "frio", "confirm_order_number": number, "form_key": key})
    assert done.status_code == 302
    assert Refund.objects.filter(payment=paid, reason="frio").get().amount == Decimal("10.00")
    change = manager.get(done["Location"]).content.decode()
    assert "10,00" in change and not [node for node in visible_nodes(change) if "10.00" in node]
    # No amount on the payment's page is written the English way (refunded, still refundable, the ledger...).
    assert [node for node in visible_nodes(change) if re.fullmatch(r"-?\d+\.\d\d", node)] == []

    # English, the other way round.
    english = Client(HTTP_ACCEPT_LANGUAGE="en")
    english.force_login(back_office["boss"])
    assert "At most " in english.get(url).content.decode()
    key = re.search(r'name="form_key" value="([0-9a-f]{32})"', english.get(url).content.decode())[1]
    english.post(url, {"amount": "1.50", "reason": "cold", "confirm_order_number": number, "form_key": key})
    assert Refund.objects.filter(payment=paid, reason="cold").get().amount == Decimal("1.50")


def test_menu_prices_are_typed_with_a_comma_in_portuguese(back_office, menu):
    manager, burger = back_office["manager"], menu["burger"]
    url = f"/admin/orders/product/{burger.pk}/change/"
    form = manager.get(url).content.decode()
    assert 'value="25,90"' in form
    data = {
        "category": burger.category_id, "kind": "item", "name": burger.name, "price": "26,50", "active": "on",
        "option_groups-TOTAL_FORMS": "0", "option_groups-INITIAL_FORMS": "0",
    }  # fmt: skip
    data["option_groups-TOTAL_FORMS"] = str(burger.option_groups.count())
    data["option_groups-INITIAL_FORMS"] = data["option_groups-TOTAL_FORMS"]
    for index, group in enumerate(burger.option_groups.order_by("position", "id")):
        data.update(
            {
                f"option_groups-{index}-id": group.pk,
                f"option_groups-{index}-product": burger.pk,
                f"option_groups-{index}-name": group.name,
                f"option_groups-{index}-min_choices": group.min_choices,
                f"option_groups-{index}-max_choices": group.max_choices,
                f"option_groups-{index}-position": group.position,
            }
        )
    saved = manager.post(url, data)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    assert Product.objects.get(pk=burger.pk).price == Decimal("26.50")


# --- What the system writes for people ------------------------------------------------------------


def test_the_worker_writes_the_ledger_and_review_reasons_in_the_restaurants_language(kiosk, order, menu, mercadopago):
    """The worker applies Mercado Pago's notifications with English active (as the whole suite runs), and still
    writes the ledger line and the review reason in Portuguese (LANGUAGE_CODE), once: a Brazilian manager reads
    them on the payment's page and on the review page, and an English-speaking admin sees the same stored words.
    The event sent to integrators (payment.under_review) keeps its English reason."""
    from kiosk.events.models import Event
    from payments.models import PaymentEvent

    def checkout(order_id):
        response = kiosk.post(f"/api/v1/orders/{order_id}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key())
        return response.json()["payment"]

    assert translation.get_language() == "en"
    paid = checkout(order["id"])
    mercadopago.pay(paid["provider_order_id"])
    second = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}]).json()
    flagged = checkout(second["id"])
    mercadopago.pay(flagged["provider_order_id"], paid_amount="25.00")  # the order totals 25.90
    mercadopago.deliver()

    approved = PaymentEvent.objects.get(payment_id=paid["id"], type="status_changed", to_status="approved")
    assert re.fullmatch(r"via notificação \d+", approved.message), approved.message
    held = Payment.objects.get(pk=flagged["id"])
    reason = (
        f"Valor divergente: o Mercado Pago diz que foram pagos 25.00; o pedido #{second['number']} totaliza 25.90 "
        "e o QR cobrava 25.90. Retido para uma pessoa decidir."
    )
    assert held.needs_review and held.review_reason == reason
    under_review = Event.objects.get(type="payment.under_review")
    assert under_review.data["reason"].startswith("Amount mismatch: Mercado Pago says 25.00 was paid;")

    boss = User.objects.create_superuser("gerente", password="gerente")
    manager, admin_in_english = Client(**PT_BR), Client(HTTP_ACCEPT_LANGUAGE="en")
    manager.force_login(boss)
    admin_in_english.force_login(boss)
    paid_page, held_page, review_page = (
        f"/admin/payments/payment/{paid['id']}/change/",
        f"/admin/payments/payment/{flagged['id']}/change/",
        f"/admin/payments/payment/review/?ids={flagged['id']}",
    )
    pages = {url: manager.get(url).content.decode() for url in (paid_page, held_page, review_page)}
    leftovers = _leftovers()
    problems = {url: hits for url, page in pages.items() if (hits := untranslated(page, leftovers, context=True))}
    assert problems == {}
    # Shown as Portuguese text (visible_nodes leaves out what is marked lang="en").
    assert approved.message in " ".join(visible_nodes(pages[paid_page]))
    assert reason in " ".join(visible_nodes(pages[held_page])) and reason in " ".join(visible_nodes(pages[review_page]))
    assert approved.message in admin_in_english.get(paid_page).content.decode()  # the same stored words


def test_a_note_is_rendered_in_the_installations_language_whatever_is_active(settings):
    from django.utils.translation import gettext_noop

    from payments.services.ledger import in_house_language, note

    line = note(gettext_noop("refund %(refund)s confirmed by Mercado Pago"), refund=12)
    for active in ("en", "pt-br"):
        with translation.override(active):
            assert str(line) == "estorno 12 confirmado pelo Mercado Pago"
            assert line.english == "refund 12 confirmed by Mercado Pago"
    why = note(gettext_noop("Mercado Pago did not answer: %(error)s"), error="get order ORD1: Timeout: timed out")
    outer = note(gettext_noop("refund %(refund)s: %(why)s"), refund=3, why=why)
    assert str(outer) == "estorno 3: o Mercado Pago não respondeu: get order ORD1: Timeout: timed out"  # its words kept
    settings.LANGUAGE_CODE = "en"
    assert in_house_language(gettext_noop("refund %(refund)s confirmed by Mercado Pago"), refund=12) == (
        "refund 12 confirmed by Mercado Pago"
    )


# --- Times in the store's zone ---------------------------------------------------------------------


@pytest.fixture
def two_zones(migration_data, menu):
    """An order in Manaus (UTC-4) paid at 2025-03-11 03:30 UTC: 23:30 of the 10th there, 00:30 of the 11th in
    São Paulo, the installation's zone (UTC-3)."""
    from orders.services import ItemRequest, order_mark_paid, order_place

    manaus = store_named("Loja Manaus", time_zone="America/Manaus")
    user = make_user("totem-am", "kiosk")
    terminal = Terminal.objects.create(name="Totem AM", store=manaus, external_pos_id="POSAM", user=user)
    order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)])
    order_mark_paid(order_id=order.pk, method="cash")
    moment = datetime.datetime(2025, 3, 11, 3, 30, tzinfo=datetime.UTC)
    Order.objects.filter(pk=order.pk).update(created_at=moment, received_at=moment)
    boss = Client(**PT_BR)
    boss.force_login(User.objects.create_superuser("chefe", password="chefe"))
    return {"store": manaus, "order": Order.objects.get(pk=order.pk), "manager": boss}


def test_a_page_about_one_store_shows_its_times_in_the_stores_zone(two_zones):
    manager, order, store = two_zones["manager"], two_zones["order"], two_zones["store"]
    page = manager.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "Horários em America/Manaus" in page
    assert "10 de Março de 2025 às 23:30" in page and "00:30" not in page
    listed = manager.get(f"/admin/orders/order/?store__id__exact={store.pk}").content.decode()
    assert "Horários em America/Manaus" in listed and "23:30" in listed and "00:30" not in listed


def test_a_page_across_stores_is_in_the_installations_zone_and_says_so(two_zones):
    page = two_zones["manager"].get("/admin/orders/order/").content.decode()
    assert settings.TIME_ZONE == "America/Sao_Paulo"
    assert "Horários em America/Sao_Paulo" in page
    assert "11 de Março de 2025 às 00:30" in page and "23:30" not in page


def test_a_cashier_of_the_store_sees_every_page_in_its_zone(two_zones):
    cashier = staff_of(make_user("caixa-am", "cashier", is_staff=True), two_zones["store"])
    browser = Client(**PT_BR)
    browser.force_login(cashier)
    page = browser.get("/admin/orders/order/").content.decode()
    assert "Horários em America/Manaus" in page and "23:30" in page
    payment_list = browser.get("/admin/payments/payment/").content.decode()
    assert "Horários em America/Manaus" in payment_list


def test_the_sales_report_of_a_store_counts_its_local_days_and_hours(two_zones):
    manager = two_zones["manager"]
    one = manager.get("/admin/reports/sales/", {"store": "loja-manaus", "start": "2025-03-10", "end": "2025-03-11"})
    assert (
        "Datas locais (America/Manaus)" in one.content.decode() and "Horários em America/Manaus" in one.content.decode()
    )
    days = {row["date"].isoformat(): row["orders"] for row in one.context["report"]["days"]}
    assert days == {"2025-03-10": 1, "2025-03-11": 0}
    assert [row["hour"] for row in one.context["report"]["hours"] if row["orders"]] == [23]
    every = manager.get("/admin/reports/sales/", {"start": "2025-03-10", "end": "2025-03-11"})
    assert "Datas locais (America/Sao_Paulo)" in every.content.decode()
    days = {row["date"].isoformat(): row["orders"] for row in every.context["report"]["days"]}
    assert days == {"2025-03-10": 0, "2025-03-11": 1}
    assert [row["hour"] for row in every.context["report"]["hours"] if row["orders"]] == [0]


# --- The API's problem details -------------------------------------------------------------------


def test_problem_details_are_portuguese_by_default_and_english_on_request(monkeypatch, terminal, menu):
    from django.test.client import RequestFactory

    monkeypatch.setattr(RequestFactory, "_base_environ", BROWSER_ENVIRON)  # no Accept-Language, as a kiosk
    kiosk = client_for(terminal.user)
    body = {"items": [{"product_id": menu["pie"].pk, "quantity": 1}]}

    def ask(**headers):
        return kiosk.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY=new_key(), **headers)

    default, english = ask(), ask(HTTP_ACCEPT_LANGUAGE="en")
    assert default.status_code == english.status_code == 409
    assert default.json()["code"] == english.json()["code"] == "product_unavailable"
    assert default.json()["detail"] == "'Torta' não está disponível no momento."
    assert english.json()["detail"] == "'Torta' is not available right now."
    assert default["Content-Language"] == "pt-br" and english["Content-Language"] == "en"

    # DRF's own problems too (its catalogue), and ours from outside a view.
    anonymous = client_for(None)
    refused, refused_en = anonymous.get("/api/v1/orders/"), anonymous.get("/api/v1/orders/", HTTP_ACCEPT_LANGUAGE="en")
    assert refused.json()["code"] == refused_en.json()["code"] == "not_authenticated"
    assert refused.json()["detail"] != refused_en.json()["detail"] == "Authentication credentials were not provided."
    nowhere = anonymous.get("/api/v1/nada/")
    assert nowhere.json() == {
        **nowhere.json(),
        "code": "not_found",
        "detail": "Não há endpoint da API em /api/v1/nada/.",
    }
    too_big = kiosk.post(
        "/api/v1/orders/", "x" * (settings.API_MAX_BODY_BYTES + 1), content_type="application/json"
    ).json()
    assert too_big["code"] == "payload_too_large" and too_big["detail"].startswith("O corpo da requisição tem")


def test_a_refusal_names_the_statuses_as_the_person_calls_them(terminal, menu, kitchen_user):
    """The kitchen refuses a move in the person's language, with the statuses as they are called there."""
    from orders.services import ItemRequest, order_place

    order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)])
    cook = client_for(kitchen_user)
    url = f"/api/v1/kitchen/orders/{order.pk}/status/"
    answer = cook.post(url, {"status": "ready"}, format="json", HTTP_ACCEPT_LANGUAGE="pt-BR").json()
    assert answer["code"] == "invalid_transition" and (answer["current"], answer["target"]) == (
        "awaiting_payment",
        "ready",
    )
    assert (
        answer["detail"] == "Um pedido na situação 'Aguardando pagamento' não pode passar para 'Pronto para retirada'."
    )
