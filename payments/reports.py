"""Sales report: read-only selectors behind the admin's "Sales" page and its CSV exports.

Definitions (all dates are local dates, a range is inclusive): local to the store asked for (its
`Store.time_zone`), or for every store together to settings.TIME_ZONE (America/Sao_Paulo).

- Store: every figure can be narrowed to one store (`store=`): its orders, their lines, payments and refunds.
- A sale is an order that was paid: `Order.received_at` is set. It falls on the local date and hour of
  `received_at`, whatever its status now; so a cancelled order counts only if it had been paid (e.g. paid,
  then refunded), and an unpaid one never does.
- Orders: the number of sales. Gross sales: the sum of `Order.total` of the sales, split by what paid the
  order (`Payment.settles`): Mercado Pago (a QR payment), cash and card outside Mercado Pago (taken at the
  counter: a `counter` payment with its method). An order marked paid by hand before counter payments were
  recorded has no paying payment: it counts as cash, as it always did.
- Refunds: money given back from sales: the sum of `Refund.amount` of refunds Mercado Pago confirmed
  ("succeeded") of payments that paid an order, dated by `Refund.confirmed_at` (when the confirmation was
  recorded), whatever day the refunded sale fell on. Money that never paid an order (a second payment, a
  payment for a cancelled order, a wrong amount) and its automatic refund count in neither column.
- Chargebacks: money of sales the buyer's bank took back (the paying payment became `charged_back`): what
  it still held then, on the local date the chargeback was recorded.
- Net sales: gross - refunds - chargebacks: the money kept (a day with refunds and no sales is negative).
- Average ticket: gross / orders, rounded half up to cents; 0.00 when there are no orders.
- Per day: every local date of the range, days without sales included: orders, gross, refunds, net.
- Per product: the lines (`OrderItem`) of the sales grouped by product: quantity sold and gross (sum of
  `line_total`), named by the snapshot on the product's most recent line (highest id) in the range;
  largest gross first. A combo is a product like any other (its line total includes its options and
  extras). `in_combos`: units of the product sold as a combo's part (a part's quantity times its line's),
  counted apart: their money is in the combo's gross. A product sold only in combos has a row with
  quantity 0, named as the product is named now.
- Per terminal: store, name, orders and gross of the sales placed on it; largest gross first.
- Per hour of day (0..23, local): orders and gross, summed over the days of the range.
- Payments export: every `Payment` created in the range, oldest first, with the sum of its confirmed
  refunds and of those still waiting for Mercado Pago (all of them, not only the range's). Never a CPF.

Money is a `Decimal` quantized to cents, never a float. The figures are aggregated in the database
(TruncDate / ExtractHour with the local time zone; MariaDB needs its time zone tables loaded).
"""

import zoneinfo
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, DecimalField, Max, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, ExtractHour, TruncDate
from django.utils import timezone
from django.utils.translation import gettext

from kiosk.api import ISO_DATE
from kiosk.store_time import zone_of
from orders.models import MONEY, Order, OrderItem, OrderItemOption, Product, Store
from payments.models import Payment, PaymentEvent, Refund

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 7
# Anything outside is a typo, and far-off years would overflow the date arithmetic.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2999, 12, 31)
SALES_CSV_SECTIONS = ("days", "products", "terminals", "hours")
CSV_CHUNK_SIZE = 2000
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What payments.csv reads: not the QR payloads, and never a customer (so no CPF can leak).
_PAYMENT_EXPORT_FIELDS = [
    "created_at", "status", "amount", "paid_amount", "needs_review", "provider_order_id", "provider_payment_id",
    "reference", "order__number", "order__business_date", "order__terminal__store__name", "order__terminal__name",
    "method",
]  # fmt: skip


class ReportRangeError(ValueError):
    """The requested dates cannot make a report; the message says why, for the person who asked."""


# --- The date range -------------------------------------------------------------------------------


def local_zone(store: Store | None = None) -> zoneinfo.ZoneInfo:
    """The zone a report's dates and hours are in: its store's, or the installation's for every store."""
    return zone_of(store)


def default_range(*, today: date | None = None) -> tuple[date, date]:
    """The last 7 days, today included."""
    end = today or timezone.localdate()
    return end - timedelta(days=DEFAULT_RANGE_DAYS - 1), end


def _parse_date(value: str, name: str) -> date:
    try:
        if not ISO_DATE.fullmatch(value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise ReportRangeError(gettext("'%(name)s' must be a date as YYYY-MM-DD.") % {"name": name}) from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ReportRangeError(
            gettext("'%(name)s' must be between %(earliest)s and %(latest)s.")
            % {"name": name, "earliest": EARLIEST_DATE, "latest": LATEST_DATE}
        )
    return day


def parse_range(*, start: str | None, end: str | None, today: date | None = None) -> tuple[date, date]:
    """Reads `?start=YYYY-MM-DD&end=YYYY-MM-DD`. Both missing: the last 7 days; only `start` missing: the
    7 days that end on `end`; only `end` missing: from `start` to today. Raises ReportRangeError."""
    start, end = (start or "").strip(), (end or "").strip()
    end_day = _parse_date(end, "end") if end else (today or timezone.localdate())
    start_day = _parse_date(start, "start") if start else end_day - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    check_range(start=start_day, end=end_day)
    return start_day, end_day


def check_range(*, start: date, end: date) -> None:
    if start > end:
        raise ReportRangeError(gettext("The start date is after the end date."))
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise ReportRangeError(
            gettext("A report covers at most %(most)d days; this range has %(days)d.")
            % {"most": MAX_RANGE_DAYS, "days": days}
        )


def _bounds(start: date, end: date, store: Store | None = None) -> tuple[datetime, datetime]:
    """[local midnight of start, local midnight after end): the same rows as "local date in range", and
    the database can use an index on the column."""
    zone = local_zone(store)
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _money(value) -> Decimal:
    return ZERO if value is None else Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# --- Querysets ------------------------------------------------------------------------------------


def _in_store(store: Store | None, order_path: str = "") -> Q:
    """Rows of `store` only (the order found at `order_path`), or everything when no store is asked for."""
    return Q() if store is None else Q(**{f"{order_path}store": store})


def sales_queryset(*, start: date, end: date, store: Store | None = None) -> QuerySet[Order]:
    """The sales: orders paid (received_at set) on a local date in [start, end], whatever their status."""
    lower, upper = _bounds(start, end, store)
    return Order.objects.filter(_in_store(store), received_at__gte=lower, received_at__lt=upper).order_by()


def refunds_queryset(*, start: date, end: date, store: Store | None = None) -> QuerySet[Refund]:
    """Confirmed refunds of money that paid a sale, by the local date their confirmation was recorded."""
    lower, upper = _bounds(start, end, store)
    return Refund.objects.filter(
        _in_store(store, "payment__order__"),
        status=Refund.Status.SUCCEEDED,
        payment__settles__isnull=False,
        confirmed_at__gte=lower,
        confirmed_at__lt=upper,
    ).order_by()


# What paid a sale: a Mercado Pago payment, or money taken at the counter (cash, a card machine outside
# Mercado Pago). Orders marked paid by hand before counter payments were recorded have none: cash.
BY_MERCADOPAGO = Q(settled_by__provider=Payment.Provider.MERCADOPAGO)
BY_CASH = Q(settled_by__isnull=True) | Q(settled_by__method=Payment.Method.CASH)
BY_CARD_OUTSIDE = Q(settled_by__method=Payment.Method.CARD_OUTSIDE)


def payments_queryset(*, start: date, end: date, store: Store | None = None) -> QuerySet[Payment]:
    """Payments created in the range, oldest first, with `refunded` (sum of succeeded refunds) annotated
    by a subquery: one query however many rows."""
    lower, upper = _bounds(start, end, store)

    def refunds_total(*statuses):
        total = (
            Refund.objects.filter(payment=OuterRef("pk"), status__in=statuses)
            .order_by()
            .values("payment")
            .annotate(total=Sum("amount"))
            .values("total")
        )
        return Coalesce(Subquery(total), Value(ZERO), output_field=DecimalField(**MONEY))

    return (
        Payment.objects.filter(_in_store(store, "order__"), created_at__gte=lower, created_at__lt=upper)
        .select_related("order__terminal__store")
        .only(*_PAYMENT_EXPORT_FIELDS)
        .annotate(
            refunded=refunds_total(Refund.Status.SUCCEEDED),
            refund_pending=refunds_total(Refund.Status.REQUESTED, Refund.Status.PENDING),
        )
        .order_by("created_at", "pk")
    )


# --- Figures --------------------------------------------------------------------------------------


def sales_summary(*, start: date, end: date, store: Store | None = None) -> dict:
    """{"start", "end", "orders", "gross", "mercadopago", "cash", "card_outside", "refunds", "chargebacks",
    "net", "average_ticket"} for the range: the sums of its days."""
    return _summary(start, end, sales_by_day(start=start, end=end, store=store))


def _summary(start: date, end: date, days: list[dict]) -> dict:
    total = {key: sum((day[key] for day in days), ZERO) for key in MONEY_COLUMNS}
    orders = sum(day["orders"] for day in days)
    average = (total["gross"] / orders).quantize(CENT, rounding=ROUND_HALF_UP) if orders else ZERO
    return {"start": start, "end": end, "orders": orders, **total, "average_ticket": average}


MONEY_COLUMNS = ("gross", "mercadopago", "cash", "card_outside", "refunds", "chargebacks", "net")


def chargebacks_by_day(*, start: date, end: date, store: Store | None = None) -> dict[date, Decimal]:
    """Money of sales lost to a chargeback, on the local date the chargeback was recorded: what the paying
    payment still held then (paid minus its confirmed refunds)."""
    lower, upper = _bounds(start, end, store)
    events = PaymentEvent.objects.filter(
        _in_store(store, "payment__order__"),
        type=PaymentEvent.Type.STATUS_CHANGED,
        to_status=Payment.Status.CHARGED_BACK,
        payment__settles__isnull=False,
        created_at__gte=lower,
        created_at__lt=upper,
    ).select_related("payment")
    lost: dict[date, Decimal] = {}
    for event in events:
        refunded = event.payment.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(total=Sum("amount"))
        amount = _money(event.payment.paid_amount) - _money(refunded["total"])
        day = event.created_at.astimezone(local_zone(store)).date()
        lost[day] = lost.get(day, ZERO) + max(amount, ZERO)
    return lost


def sales_by_day(*, start: date, end: date, store: Store | None = None) -> list[dict]:
    """One row per local date of the range, zero days included:
    {"date", "orders", "gross", "mercadopago", "cash", "card_outside", "refunds", "chargebacks", "net"}."""
    zone = local_zone(store)
    sales = {
        row["day"]: row
        for row in sales_queryset(start=start, end=end, store=store)
        .annotate(day=TruncDate("received_at", tzinfo=zone))
        .values("day")
        .annotate(
            orders=Count("pk"),
            mercadopago=Sum("total", filter=BY_MERCADOPAGO),
            cash=Sum("total", filter=BY_CASH),
            card_outside=Sum("total", filter=BY_CARD_OUTSIDE),
        )
    }
    refunds = {
        row["day"]: row["total"]
        for row in refunds_queryset(start=start, end=end, store=store)
        .annotate(day=TruncDate("confirmed_at", tzinfo=zone))
        .values("day")
        .annotate(total=Sum("amount"))
    }
    chargebacks = chargebacks_by_day(start=start, end=end, store=store)
    rows = []
    for day in _days(start, end):
        found = sales.get(day, {})
        mercadopago, cash = _money(found.get("mercadopago")), _money(found.get("cash"))
        card = _money(found.get("card_outside"))
        refunded, lost = _money(refunds.get(day)), chargebacks.get(day, ZERO)
        rows.append(
            {
                "date": day,
                "orders": found.get("orders", 0),
                "gross": mercadopago + cash + card,
                "mercadopago": mercadopago,
                "cash": cash,
                "card_outside": card,
                "refunds": refunded,
                "chargebacks": lost,
                "net": mercadopago + cash + card - refunded - lost,
            }
        )
    return rows


def sales_by_product(*, start: date, end: date, store: Store | None = None) -> list[dict]:
    """{"product_id", "product_name", "quantity", "gross", "in_combos"} per product sold, alone or as a
    combo's part; largest gross first."""
    lower, upper = _bounds(start, end, store)
    grouped = list(
        OrderItem.objects.filter(
            _in_store(store, "order__"), order__received_at__gte=lower, order__received_at__lt=upper
        )
        .order_by()
        .values("product_id")
        .annotate(quantity=Sum("quantity"), gross=Sum("line_total"), latest_line=Max("pk"))
        .order_by("-gross", "product_id")
    )
    # A line's name is the product's name when it was ordered; the newest line has the newest name.
    names = dict(
        OrderItem.objects.filter(pk__in=[row["latest_line"] for row in grouped]).values_list("pk", "product_name")
    )
    in_combos = combo_parts_sold(start=start, end=end, store=store)
    rows = [
        {
            "product_id": row["product_id"],
            "product_name": names[row["latest_line"]],
            "quantity": row["quantity"],
            "gross": _money(row["gross"]),
            "in_combos": in_combos.pop(row["product_id"], 0),
        }
        for row in grouped
    ]
    only_in_combos = Product.objects.filter(pk__in=in_combos).order_by("pk").values_list("pk", "name")
    return rows + [
        {"product_id": pk, "product_name": name, "quantity": 0, "gross": ZERO, "in_combos": in_combos[pk]}
        for pk, name in only_in_combos
    ]


def combo_parts_sold(*, start: date, end: date, store: Store | None = None) -> dict[int, int]:
    """Units of each product sold as a combo's part in the sales of the range: {product id: units}."""
    lower, upper = _bounds(start, end, store)
    parts = (
        OrderItemOption.objects.filter(
            _in_store(store, "item__order__"),
            product__isnull=False,
            item__order__received_at__gte=lower,
            item__order__received_at__lt=upper,
        )
        .order_by()
        .values("product_id", "quantity", "item__quantity", "parent__quantity")
    )
    sold: dict[int, int] = {}
    for part in parts:
        units = part["quantity"] * part["item__quantity"] * (part["parent__quantity"] or 1)
        sold[part["product_id"]] = sold.get(part["product_id"], 0) + units
    return sold


def sales_by_terminal(*, start: date, end: date, store: Store | None = None) -> list[dict]:
    """{"terminal_id", "store", "name", "orders", "gross"} per terminal with sales, largest gross first."""
    rows = (
        sales_queryset(start=start, end=end, store=store)
        .values("terminal_id", "terminal__store__name", "terminal__name")
        .annotate(orders=Count("pk"), gross=Sum("total"))
        .order_by("-gross", "terminal__store__name", "terminal__name", "terminal_id")
    )
    return [
        {
            "terminal_id": row["terminal_id"],
            "store": row["terminal__store__name"],
            "name": row["terminal__name"],
            "orders": row["orders"],
            "gross": _money(row["gross"]),
        }
        for row in rows
    ]


def sales_by_hour(*, start: date, end: date, store: Store | None = None) -> list[dict]:
    """24 rows, hours 0..23 of the local day: {"hour", "orders", "gross"}."""
    found = {
        row["hour"]: row
        for row in sales_queryset(start=start, end=end, store=store)
        .annotate(hour=ExtractHour("received_at", tzinfo=local_zone(store)))
        .values("hour")
        .annotate(orders=Count("pk"), gross=Sum("total"))
    }
    return [
        {
            "hour": hour,
            "orders": found[hour]["orders"] if hour in found else 0,
            "gross": _money(found[hour]["gross"]) if hour in found else ZERO,
        }
        for hour in range(24)
    ]


def sales_report(*, start: date, end: date, store: Store | None = None) -> dict:
    """Everything the page shows: {"summary", "days", "products", "terminals", "hours"}, of one store or all."""
    days = sales_by_day(start=start, end=end, store=store)
    summary = _summary(start, end, days)
    return {
        "summary": summary,
        "days": days,
        "products": sales_by_product(start=start, end=end, store=store),
        "terminals": sales_by_terminal(start=start, end=end, store=store),
        "hours": sales_by_hour(start=start, end=end, store=store),
    }


# --- CSV rows -------------------------------------------------------------------------------------


def csv_text(value: str | None) -> str:
    """A text cell a spreadsheet will not run: a leading =, +, -, @ (or tab, carriage return) gets a '."""
    value = value or ""
    return f"'{value}" if value.startswith(_FORMULA_PREFIXES) else value


def sales_csv_rows(*, start: date, end: date, section: str = "days", store: Store | None = None) -> Iterator[list]:
    """Rows of sales.csv, header first, of one store or all. Sections:

    - days (default): date, orders, gross, mercadopago, cash, card_outside, refunds, chargebacks, net per local
      date, then "total";
    - products: product_id, product_name, quantity, gross, in_combos (units sold as a combo's part);
    - terminals: terminal_id, store, terminal, orders, gross;
    - hours: hour, orders, gross.
    """
    if section == "days":
        columns = ["orders", *MONEY_COLUMNS]
        yield ["date", *columns]
        days = sales_by_day(start=start, end=end, store=store)
        for day in days:
            yield [day["date"].isoformat(), *(day[column] for column in columns)]
        yield ["total", *(sum((day[column] for day in days), 0) for column in columns)]
    elif section == "products":
        yield ["product_id", "product_name", "quantity", "gross", "in_combos"]
        for row in sales_by_product(start=start, end=end, store=store):
            yield [row["product_id"], csv_text(row["product_name"]), row["quantity"], row["gross"], row["in_combos"]]
    elif section == "terminals":
        yield ["terminal_id", "store", "terminal", "orders", "gross"]
        for row in sales_by_terminal(start=start, end=end, store=store):
            yield [row["terminal_id"], csv_text(row["store"]), csv_text(row["name"]), row["orders"], row["gross"]]
    elif section == "hours":
        yield ["hour", "orders", "gross"]
        for row in sales_by_hour(start=start, end=end, store=store):
            yield [row["hour"], row["orders"], row["gross"]]
    else:
        raise ValueError(f"Unknown section {section!r}; use one of: {', '.join(SALES_CSV_SECTIONS)}.")


PAYMENTS_CSV_HEADER = [
    "payment_id",
    "created_at",
    "order_id",
    "pickup_number",
    "business_date",
    "store",
    "terminal",
    "status",
    "amount",
    "paid_amount",
    "refunded",
    "refund_pending",
    "needs_review",
    "mercadopago_order_id",
    "mercadopago_payment_id",
    "external_reference",
    "method",
]


def payments_csv_rows(
    *, start: date, end: date, chunk_size: int = CSV_CHUNK_SIZE, store: Store | None = None
) -> Iterator[list]:
    """Rows of payments.csv, header first, of one store or all; reads the payments `chunk_size` at a time.
    `method`: mercadopago_qr, or cash / card_outside for money taken at the counter."""
    yield PAYMENTS_CSV_HEADER
    zone = local_zone(store)
    for payment in payments_queryset(start=start, end=end, store=store).iterator(chunk_size=chunk_size):
        order = payment.order
        yield [
            payment.pk,
            payment.created_at.astimezone(zone).isoformat(timespec="seconds"),
            order.pk,
            order.number,
            order.business_date.isoformat(),
            csv_text(order.terminal.store.name),
            csv_text(order.terminal.name),
            csv_text(payment.status),
            _money(payment.amount),
            "" if payment.paid_amount is None else _money(payment.paid_amount),
            _money(payment.refunded),
            _money(payment.refund_pending),
            "yes" if payment.needs_review else "no",
            csv_text(payment.provider_order_id),
            csv_text(payment.provider_payment_id),
            csv_text(payment.reference),
            payment.method,
        ]
