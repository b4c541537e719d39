"""The sales report: exact figures on a known data set, local-date bucketing, access, bad input, CSV exports.

Data set (local times, America/Sao_Paulo; the report covers 2025-03-10 .. 2025-03-13):

    sale A  Totem A   2 x X-Burger          51.80  paid 03-10 12:30
    sale B  +Totem B  X-Burger + Suco       35.80  paid 03-10 23:50  (03-11 in UTC: local date wins)
    sale C  Totem A   Suco                   9.90  paid 03-12 09:05, then cancelled: still a sale
    sale D  Totem A   @Burger Especial      25.90  paid 03-13 23:30  (03-14 in UTC)
    outside           paid 03-09 23:59 (03-10 in UTC) and 03-14 00:05; plus an unpaid and a cancelled unpaid order
    A and B were paid through Mercado Pago (their payments settle them); C and D at the counter (cash).
    refunds on A's payment: 10.00 ok 03-11 21:30 (03-12 UTC), 5.00 ok 03-13 23:59, 7.00 failed,
                            2.00 requested, 3.00 ok 03-14 00:30 (outside)
    a late payment for the cancelled unpaid order, refunded automatically (25.90 ok 03-12 07:05): no sale,
    so neither its money nor its refund is in the sales figures
"""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User

from orders.models import Order, Product, Terminal
from orders.services import ItemRequest, order_cancel, order_mark_paid, order_place
from payments import reports
from payments.models import Payment, Refund
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

LOCAL = ZoneInfo("America/Sao_Paulo")
START, END = date(2025, 3, 10), date(2025, 3, 13)
RANGE = {"start": "2025-03-10", "end": "2025-03-13"}
CPF = "52998224725"
D = Decimal


def local(month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=LOCAL)


def sale(terminal, items, paid_at: datetime, **extra) -> Order:
    order = order_place(terminal=terminal, items=items, customer_cpf=extra.pop("cpf", None))
    order_mark_paid(order_id=order.pk)
    Order.objects.filter(pk=order.pk).update(received_at=paid_at, business_date=paid_at.date(), **extra)
    order.refresh_from_db()
    return order


def payment(order, created_at: datetime, **fields) -> Payment:
    made = Payment.objects.create(order=order, amount=order.total, **fields)
    Payment.objects.filter(pk=made.pk).update(created_at=created_at)
    made.refresh_from_db()
    return made


def refund(payment_, amount: str, status: str, recorded_at: datetime) -> Refund:
    made = Refund.objects.create(payment=payment_, amount=D(amount), status=status, reason="test", requested_by="boss")
    confirmed = recorded_at if status == Refund.Status.SUCCEEDED else None
    Refund.objects.filter(pk=made.pk).update(updated_at=recorded_at, confirmed_at=confirmed)  # update() skips auto_now
    return made


@pytest.fixture
def data(terminal, other_terminal, menu):
    burger, juice = menu["burger"], menu["juice"]
    Terminal.objects.filter(pk=other_terminal.pk).update(name="+Totem B")
    a = sale(terminal, [ItemRequest(burger.pk, 2)], local(3, 10, 12, 30))
    b = sale(other_terminal, [ItemRequest(burger.pk, 1), ItemRequest(juice.pk, 1)], local(3, 10, 23, 50), cpf=CPF)
    c = sale(terminal, [ItemRequest(juice.pk, 1)], local(3, 12, 9, 5), status=Order.Status.CANCELLED)
    Product.objects.filter(pk=burger.pk).update(name="@Burger Especial")
    d = sale(terminal, [ItemRequest(burger.pk, 1)], local(3, 13, 23, 30))
    # Renamed again: the name on the range's newest line ("@Burger Especial") is the one reported.
    Product.objects.filter(pk=burger.pk).update(name="X-Burger 2")
    before = sale(terminal, [ItemRequest(burger.pk, 1)], local(3, 9, 23, 59))
    sale(other_terminal, [ItemRequest(burger.pk, 3)], local(3, 14, 0, 5))
    unpaid = order_place(terminal=terminal, items=[ItemRequest(burger.pk, 1)])
    cancelled_unpaid = order_place(terminal=terminal, items=[ItemRequest(burger.pk, 1)])
    order_cancel(order_id=cancelled_unpaid.pk)

    pay_a = payment(
        a,
        local(3, 10, 12, 29),
        paid_amount=a.total,
        status=Payment.Status.PARTIALLY_REFUNDED,
        settles=a,
        provider_order_id="ORD-A",
        provider_payment_id="PAY-A",
        reference="kp-a",
    )
    pay_b = payment(
        b,
        local(3, 10, 23, 49),
        paid_amount=b.total,
        status=Payment.Status.APPROVED,
        settles=b,
        provider_order_id="ORD-B",
        provider_payment_id="PAY-B",
        reference="=kp-b",
        needs_review=True,
    )
    payment(before, local(3, 9, 23, 58), status=Payment.Status.APPROVED, reference="kp-before")
    pay_pending = payment(unpaid, local(3, 12, 8, 0), reference="kp-p")
    pay_late = payment(
        cancelled_unpaid,
        local(3, 12, 7, 0),
        paid_amount=D("25.90"),
        status=Payment.Status.REFUNDED,
        needs_review=True,
        reference="kp-late",
    )
    refund(pay_late, "25.90", Refund.Status.SUCCEEDED, local(3, 12, 7, 5))
    refund(pay_a, "10.00", Refund.Status.SUCCEEDED, local(3, 11, 21, 30))
    refund(pay_a, "5.00", Refund.Status.SUCCEEDED, local(3, 13, 23, 59))
    refund(pay_a, "7.00", Refund.Status.FAILED, local(3, 12, 10, 0))
    refund(pay_a, "2.00", Refund.Status.REQUESTED, local(3, 12, 10, 0))
    refund(pay_a, "3.00", Refund.Status.SUCCEEDED, local(3, 14, 0, 30))
    return {
        "orders": {"a": a, "b": b, "c": c, "d": d, "unpaid": unpaid},
        "payments": {"a": pay_a, "b": pay_b, "pending": pay_pending, "late": pay_late},
        "cancelled_unpaid": cancelled_unpaid,
        "terminal": terminal,
        "other_terminal": other_terminal,
        "menu": menu,
    }


# --- Selectors ------------------------------------------------------------------------------------


def test_summary(data):
    assert reports.sales_summary(start=START, end=END) == {
        "start": START,
        "end": END,
        "orders": 4,
        "gross": D("123.40"),
        "mercadopago": D("87.60"),
        "cash": D("35.80"),
        "card_outside": D("0.00"),
        "refunds": D("15.00"),
        "chargebacks": D("0.00"),
        "net": D("108.40"),
        "average_ticket": D("30.85"),
    }


def test_summary_of_a_day_with_only_a_refund_and_of_an_empty_range(data):
    only_refund = reports.sales_summary(start=date(2025, 3, 11), end=date(2025, 3, 11))
    assert (only_refund["orders"], only_refund["gross"], only_refund["refunds"]) == (0, D("0.00"), D("10.00"))
    assert (only_refund["net"], only_refund["average_ticket"]) == (D("-10.00"), D("0.00"))
    empty = reports.sales_summary(start=date(2024, 1, 1), end=date(2024, 1, 2))
    assert [str(empty[k]) for k in ("orders", "gross", "refunds", "net", "average_ticket")] == [
        "0",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
    ]


def test_per_day_buckets_by_local_date_and_includes_zero_days(data):
    keys = ("date", "orders", "gross", "mercadopago", "cash", "refunds", "net")
    rows = [tuple(r[k] for k in keys) for r in reports.sales_by_day(start=START, end=END)]
    assert rows == [
        (date(2025, 3, 10), 2, D("87.60"), D("87.60"), D("0.00"), D("0.00"), D("87.60")),
        (date(2025, 3, 11), 0, D("0.00"), D("0.00"), D("0.00"), D("10.00"), D("-10.00")),
        (date(2025, 3, 12), 1, D("9.90"), D("0.00"), D("9.90"), D("0.00"), D("9.90")),
        (date(2025, 3, 13), 1, D("25.90"), D("0.00"), D("25.90"), D("5.00"), D("20.90")),
    ]
    # The money is Decimal with two places, never a float.
    for row in reports.sales_by_day(start=START, end=END):
        for key in ("gross", "mercadopago", "cash", "refunds", "net"):
            assert isinstance(row[key], Decimal) and row[key].as_tuple().exponent == -2


def test_per_product_uses_the_newest_name_in_range(data):
    menu = data["menu"]
    assert reports.sales_by_product(start=START, end=END) == [
        {
            "product_id": menu["burger"].pk,
            "product_name": "@Burger Especial",
            "quantity": 4,
            "gross": D("103.60"),
            "in_combos": 0,
        },
        {"product_id": menu["juice"].pk, "product_name": "Suco", "quantity": 2, "gross": D("19.80"), "in_combos": 0},
    ]


def test_per_terminal(data):
    assert reports.sales_by_terminal(start=START, end=END) == [
        {"terminal_id": data["terminal"].pk, "store": "Loja 1", "name": "Totem A", "orders": 3, "gross": D("87.60")},
        {
            "terminal_id": data["other_terminal"].pk,
            "store": "Loja 1",
            "name": "+Totem B",
            "orders": 1,
            "gross": D("35.80"),
        },
    ]


def test_per_hour_is_local(data):
    hours = reports.sales_by_hour(start=START, end=END)
    assert [h["hour"] for h in hours] == list(range(24))
    busy = {h["hour"]: (h["orders"], h["gross"]) for h in hours if h["orders"]}
    assert busy == {9: (1, D("9.90")), 12: (1, D("51.80")), 23: (2, D("61.70"))}
    assert all(h["gross"] == D("0.00") for h in hours if not h["orders"])


def test_report_totals_match_the_summary(data):
    report = reports.sales_report(start=START, end=END)
    assert report["summary"] == reports.sales_summary(start=START, end=END)
    assert len(report["days"]) == 4 and len(report["hours"]) == 24


def test_parse_range():
    today = date(2025, 3, 13)
    assert reports.parse_range(start=None, end=None, today=today) == (date(2025, 3, 7), today)
    assert reports.parse_range(start="", end="2025-03-05", today=today) == (date(2025, 2, 27), date(2025, 3, 5))
    assert reports.parse_range(start="2025-03-01", end=None, today=today) == (date(2025, 3, 1), today)
    assert reports.parse_range(start="2024-01-01", end="2024-12-31") == (date(2024, 1, 1), date(2024, 12, 31))
    for start, end in [
        ("2025-02-30", "2025-03-01"),  # no such day
        ("10/03/2025", "2025-03-11"),  # not ISO
        ("20250310", "2025-03-11"),
        ("2025-03-12", "2025-03-11"),  # start after end
        ("2024-01-01", "2025-01-01"),  # 367 days
        ("2025-03-01", "9999-12-31"),  # would overflow
        ("0001-01-01", "0001-01-02"),
    ]:
        with pytest.raises(reports.ReportRangeError):
            reports.parse_range(start=start, end=end, today=today)


def test_csv_text_defuses_formulas():
    cases = {"=1+2": "'=1+2", "+x": "'+x", "-x": "'-x", "@x": "'@x", "\tx": "'\tx", "Suco": "Suco", "": "", None: ""}
    assert {k: reports.csv_text(k) for k in cases} == cases


# --- The page -------------------------------------------------------------------------------------


def _client_for(client, user):
    if user is not None:
        client.force_login(user)
    return client


def test_page_for_a_manager(client, manager_user, data):
    response = _client_for(client, manager_user).get("/admin/reports/sales/", RANGE, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    page = response.content.decode()
    for text in (
        "Sales",
        "123.40",
        "15.00",
        "108.40",
        "30.85",
        "-10.00",
        "@Burger Especial",
        "+Totem B",
        "Definitions",
    ):
        assert text in page
    assert 'href="/admin/reports/sales.csv?start=2025-03-10&amp;end=2025-03-13"' in page
    assert 'href="/admin/reports/payments.csv?start=2025-03-10&amp;end=2025-03-13"' in page
    assert page.count('<rect class="bar"') == 24
    assert "<script" not in page.split('<div class="sales-report">')[1]
    assert response.context["report"]["summary"]["orders"] == 4


def test_chart_coordinates_are_never_localised(client, manager_user, data):
    page = _client_for(client, manager_user).get("/admin/reports/sales/", RANGE, HTTP_ACCEPT_LANGUAGE="pt-BR")
    page = page.content.decode()
    assert "123,40" in page  # money follows the language
    svg = page[page.index('<svg class="chart"') :].split("</svg>")[0]
    # Hour 23 has the largest gross: the full 160-unit bar, x = 8 + 23 * 36.
    assert '<rect class="bar" x="836" y="28" width="30" height="160"/>' in svg
    assert 'height="0"' in svg  # the empty hours


def test_page_defaults_to_the_last_seven_days(client, manager_user):
    response = _client_for(client, manager_user).get("/admin/reports/sales/")
    summary = response.context["report"]["summary"]
    assert (summary["end"] - summary["start"]).days == 6
    assert len(response.context["report"]["days"]) == 7


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2025-13-01", "end": "2025-03-13"},
        {"start": "2025-03-14", "end": "2025-03-13"},
        {"start": "2024-01-01", "end": "2025-01-01"},
        {"start": "<script>alert(1)</script>", "end": "2025-03-13"},
        {"start": "2025-03-10", "end": "99999-01-01"},
    ],
)
def test_page_shows_bad_ranges_as_errors(client, manager_user, params):
    response = _client_for(client, manager_user).get("/admin/reports/sales/", params)
    assert response.status_code == 200
    assert response.context["report"] is None and response.context["error"]
    page = response.content.decode()
    assert 'class="error"' in page and "<script>alert" not in page


def test_access(client, data):
    urls = ["/admin/reports/sales/", "/admin/reports/sales.csv", "/admin/reports/payments.csv"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url

    cook = make_user("cook-staff", "kitchen", is_staff=True)
    _client_for(client, cook)
    assert [client.get(url).status_code for url in urls] == [403, 403, 403]

    boss = User.objects.create_superuser("root", password="root")
    _client_for(client, boss)
    assert [client.get(url).status_code for url in urls] == [200, 200, 200]
    assert client.post(urls[0]).status_code == 405


# --- CSV exports ----------------------------------------------------------------------------------


def _csv(response) -> str:
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return b"".join(response.streaming_content).decode()


def test_sales_csv(client, manager_user, data):
    response = _client_for(client, manager_user).get("/admin/reports/sales.csv", RANGE)
    assert response["Content-Disposition"] == 'attachment; filename="sales-2025-03-10-2025-03-13.csv"'
    assert _csv(response) == (
        "date,orders,gross,mercadopago,cash,card_outside,refunds,chargebacks,net\r\n"
        "2025-03-10,2,87.60,87.60,0.00,0.00,0.00,0.00,87.60\r\n"
        "2025-03-11,0,0.00,0.00,0.00,0.00,10.00,0.00,-10.00\r\n"
        "2025-03-12,1,9.90,0.00,9.90,0.00,0.00,0.00,9.90\r\n"
        "2025-03-13,1,25.90,0.00,25.90,0.00,5.00,0.00,20.90\r\n"
        "total,4,123.40,87.60,35.80,0.00,15.00,0.00,108.40\r\n"
    )


def test_sales_csv_sections(client, manager_user, data):
    _client_for(client, manager_user)
    burger, juice = data["menu"]["burger"].pk, data["menu"]["juice"].pk
    a, b = data["terminal"].pk, data["other_terminal"].pk

    products = client.get("/admin/reports/sales.csv", {**RANGE, "section": "products"})
    assert products["Content-Disposition"] == 'attachment; filename="sales-products-2025-03-10-2025-03-13.csv"'
    assert _csv(products) == (
        f"product_id,product_name,quantity,gross,in_combos\r\n{burger},'@Burger Especial,4,103.60,0\r\n{juice},Suco,2,19.80,0\r\n"
    )
    terminals = client.get("/admin/reports/sales.csv", {**RANGE, "section": "terminals"})
    assert _csv(terminals) == (
        f"terminal_id,store,terminal,orders,gross\r\n{a},Loja 1,Totem A,3,87.60\r\n{b},Loja 1,'+Totem B,1,35.80\r\n"
    )
    hours = _csv(client.get("/admin/reports/sales.csv", {**RANGE, "section": "hours"})).splitlines()
    assert hours[0] == "hour,orders,gross" and len(hours) == 25
    assert (hours[1], hours[10], hours[13], hours[24]) == ("0,0,0.00", "9,1,9.90", "12,1,51.80", "23,2,61.70")


def test_payments_csv(client, manager_user, data, django_assert_num_queries):
    response = _client_for(client, manager_user).get("/admin/reports/payments.csv", RANGE)
    assert response["Content-Disposition"] == 'attachment; filename="payments-2025-03-10-2025-03-13.csv"'
    with django_assert_num_queries(1):  # the refunded sums come in the same query, not one per row
        content = _csv(response)
    o, p = data["orders"], data["payments"]
    assert content == (
        "payment_id,created_at,order_id,pickup_number,business_date,store,terminal,status,amount,paid_amount,"
        "refunded,refund_pending,needs_review,mercadopago_order_id,mercadopago_payment_id,external_reference,method\r\n"
        f"{p['a'].pk},2025-03-10T12:29:00-03:00,{o['a'].pk},{o['a'].number},2025-03-10,Loja 1,Totem A,"
        "partially_refunded,51.80,51.80,18.00,2.00,no,ORD-A,PAY-A,kp-a,mercadopago_qr\r\n"
        f"{p['b'].pk},2025-03-10T23:49:00-03:00,{o['b'].pk},{o['b'].number},2025-03-10,Loja 1,'+Totem B,"
        "approved,35.80,35.80,0.00,0.00,yes,ORD-B,PAY-B,'=kp-b,mercadopago_qr\r\n"
        f"{p['late'].pk},2025-03-12T07:00:00-03:00,{data['cancelled_unpaid'].pk},{data['cancelled_unpaid'].number},"
        f"{data['cancelled_unpaid'].business_date.isoformat()},Loja 1,Totem A,refunded,25.90,25.90,25.90,0.00,yes,,,"
        "kp-late,mercadopago_qr\r\n"
        f"{p['pending'].pk},2025-03-12T08:00:00-03:00,{o['unpaid'].pk},{o['unpaid'].number},"
        f"{o['unpaid'].business_date.isoformat()},Loja 1,Totem A,pending,25.90,,0.00,0.00,no,,,kp-p,mercadopago_qr\r\n"
    )
    assert CPF not in content and "529.982.247-25" not in content and "***.982" not in content


@pytest.mark.parametrize("url", ["/admin/reports/sales.csv", "/admin/reports/payments.csv"])
@pytest.mark.parametrize(
    "params",
    [
        {"start": "2025-03-10", "end": "nope"},
        {"start": "2025-03-14", "end": "2025-03-13"},
        {"start": "2024-01-01", "end": "2025-01-01"},
    ],
)
def test_csv_bad_ranges_are_400_plain_text(client, manager_user, url, params):
    response = _client_for(client, manager_user).get(url, params)
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content


def test_sales_csv_unknown_section_is_400(client, manager_user):
    response = _client_for(client, manager_user).get("/admin/reports/sales.csv", {"section": "<x>"})
    assert response.status_code == 400 and b"<x>" not in response.content


def test_payments_csv_is_sent_in_chunks(client, manager_user, terminal, menu):
    order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)])
    Payment.objects.bulk_create([Payment(order=order, amount=order.total) for _ in range(1200)])
    response = _client_for(client, manager_user).get("/admin/reports/payments.csv")  # the last 7 days: today's
    chunks = list(response.streaming_content)
    assert [chunk.count(b"\r\n") for chunk in chunks] == [500, 500, 201]  # header + 1200 rows


# --- A day scripted through the real flow, checked against the ledger ------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_scripted_day_agrees_with_the_ledger_everywhere(
    client, kiosk, menu, mercadopago, manager_user, migration_data
):
    """Sales, a partial and a full refund, a late payment refunded automatically, a cash order and a refund
    still waiting for Mercado Pago: every figure of the report and of both CSVs, against the ledger."""
    import csv
    import io

    from django.utils import timezone

    from orders.models import Order
    from payments.models import PaymentEvent
    from payments.services.checkout import order_pay_at_counter
    from payments.services.refunds import refund_request
    from tests.conftest import new_key, place

    def sell(items):
        order = place(kiosk, items).json()
        payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()
        return order, payment["payment"]

    burger, juice = menu["burger"].pk, menu["juice"].pk
    _, pay_a = sell([{"product_id": burger, "quantity": 2}, {"product_id": juice, "quantity": 1}])  # 61.70
    _, pay_b = sell([{"product_id": burger, "quantity": 1}])  # 25.90
    c, pay_c = sell([{"product_id": burger, "quantity": 1}])  # 25.90, cancelled, then paid: refunded
    _, pay_e = sell([{"product_id": burger, "quantity": 1}])  # 25.90, refund still pending at the end
    _, pay_f = sell([{"product_id": burger, "quantity": 1}])  # 25.90, then charged back by the buyer's bank
    d = place(kiosk, [{"product_id": juice, "quantity": 1}]).json()  # 9.90, paid in cash
    for paid in (pay_a, pay_b, pay_e, pay_f, pay_c):
        mercadopago.pay(paid["provider_order_id"])
    kiosk.post(f"/api/v1/orders/{c['id']}/cancel/")  # the kiosk gives up on C just as its customer pays
    mercadopago.deliver()
    order_pay_at_counter(order_id=d["id"], method="cash", amount=D("9.90"), actor="cashier")
    refund_request(payment_id=pay_a["id"], amount=D("10.00"), reason="cold fries", actor="boss")
    mercadopago.settle()
    refund_request(payment_id=pay_b["id"], amount=None, reason="wrong order", actor="boss")
    mercadopago.settle()
    refund_request(payment_id=pay_e["id"], amount=D("5.00"), reason="missing straw", actor="boss")  # not confirmed
    mercadopago.pay(pay_f["provider_order_id"], "charged_back")
    mercadopago.deliver()

    assert Order.objects.get(pk=c["id"]).status == "cancelled" and Order.objects.get(pk=c["id"]).received_at is None
    assert Payment.objects.get(pk=pay_c["id"]).status == "refunded"
    assert Payment.objects.get(pk=pay_b["id"]).status == "refunded"

    today = timezone.localdate()
    summary = reports.sales_summary(start=today, end=today)
    sold = Payment.objects.filter(settles__isnull=False, provider="mercadopago")
    ledger_refunds = sum(
        (e.amount for e in PaymentEvent.objects.filter(type="refund_succeeded", payment__in=sold)), D("0.00")
    )
    assert summary["orders"] == 5  # A, B (refunded, still a sale), D (cash), E, F (charged back, still a sale)
    assert summary["gross"] == D("149.30")
    assert summary["mercadopago"] == sum((p.paid_amount for p in sold), D("0.00")) == D("139.40")
    assert summary["cash"] == D("9.90")
    assert summary["refunds"] == ledger_refunds == D("35.90")  # C's automatic refund is in neither column
    assert summary["chargebacks"] == Payment.objects.get(pk=pay_f["id"]).paid_amount == D("25.90")
    assert summary["net"] == D("87.50")

    _client_for(client, manager_user)
    days = list(csv.reader(io.StringIO(_csv(client.get("/admin/reports/sales.csv", {"start": today, "end": today})))))
    assert days[1][1:] == days[2][1:] == ["5", "149.30", "139.40", "9.90", "0.00", "35.90", "25.90", "87.50"]
    rows = list(csv.DictReader(io.StringIO(_csv(client.get("/admin/reports/payments.csv")))))
    assert len(rows) == 6  # five QRs, and D's cash taken at the counter
    assert [row["method"] for row in rows].count("cash") == 1
    for row in rows:
        payment = Payment.objects.get(pk=row["payment_id"])
        assert D(row["refunded"]) == payment.refunded_amount()  # the ledger's figure
        pending = payment.refunds.filter(status__in=["requested", "pending"])
        assert D(row["refund_pending"]) == sum((r.amount for r in pending), D("0.00"))
    assert {row["payment_id"]: row["refund_pending"] for row in rows}[str(pay_e["id"])] == "5.00"
