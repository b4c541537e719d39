"""The admin's "Sales" page and its CSV exports. Thin: parse the range, call `payments.reports`, shape output.

Wrapped in `admin.site.admin_view` in kiosk/urls.py (staff only, else the admin login), and each view checks
`payments.view_sales_report` itself (403 without it). A kitchen or cashier login given it sees its own store's only.

- `admin/reports/sales/?start=YYYY-MM-DD&end=YYYY-MM-DD&store=<slug>`: the page (`store` optional: all stores).
- `admin/reports/sales.csv?start=&end=&store=&section=days|products|terminals|hours`: one section per file;
  `days` (the default) is the per-day rows plus a totals row.
- `admin/reports/payments.csv?start=&end=&store=`: one row per payment created in the range.
"""

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import date
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext
from django.views.decorators.http import require_safe

from kiosk.roles import works_in_one_store
from kiosk.store_time import render_in_zone, zone_of
from orders.models import Store
from orders.selectors import staff_store
from payments import reports

PERMISSION = "payments.view_sales_report"

# The hour chart's geometry, in SVG user units.
CHART_BAR = 30
CHART_GAP = 6
CHART_PLOT_HEIGHT = 160
CHART_TOP = 28  # room for the count above the tallest bar
CHART_LEFT = 8


def _check_permission(request: HttpRequest) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


CSV_LINES_PER_CHUNK = 500


def _csv_chunks(rows: Iterable[list]) -> Iterator[str]:
    """CSV text a few hundred lines at a time: bounded memory, without one socket write per line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if count % CSV_LINES_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _csv_response(rows: Iterable[list], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_csv_chunks(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _bad_request(message: str) -> HttpResponse:
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


def _range_query(start: date, end: date, store: Store | None = None, **extra) -> str:
    store_param = {"store": store.slug} if store else {}
    return urlencode({"start": start.isoformat(), "end": end.isoformat(), **store_param, **extra})


class UnknownStore(ValueError):
    pass


def _own_store(request: HttpRequest) -> Store | None:
    """The one store a kitchen or cashier login given the permission may see (PermissionDenied while it works in
    none); None for a manager, who sees every store."""
    if not works_in_one_store(request.user):
        return None
    store = staff_store(request.user)
    if store is None:
        raise PermissionDenied
    return store


def _stores(request: HttpRequest) -> QuerySet[Store]:
    own = _own_store(request)
    return Store.objects.filter(pk=own.pk) if own else Store.objects.all()


def _store(request: HttpRequest) -> Store | None:
    """`?store=<slug>`: one store's figures; empty or missing: every store's (a kitchen or cashier login's own:
    another store is unknown to it)."""
    slug = (request.GET.get("store") or "").strip()
    own = _own_store(request)
    if not slug:
        return own
    store = _stores(request).filter(slug=slug).first()
    if store is None:
        raise UnknownStore(gettext("There is no store '%(slug)s'.") % {"slug": slug[:80]})
    return store


def _filename(name: str, start: date, end: date, store: Store | None) -> str:
    return f"{name}-{store.slug + '-' if store else ''}{start.isoformat()}-{end.isoformat()}.csv"


def _hour_chart(hours: list[dict]) -> dict:
    """Bars for the per-hour gross: whole numbers only, so no localisation can put a comma in the SVG."""
    top = max((row["gross"] for row in hours), default=0)
    step = CHART_BAR + CHART_GAP
    bars = []
    for row in hours:
        height = round(row["gross"] / top * CHART_PLOT_HEIGHT) if top else 0
        if row["gross"] and height == 0:
            height = 1  # a sale is never invisible
        x = CHART_LEFT + row["hour"] * step
        bars.append(
            {
                **row,
                "x": x,
                "y": CHART_TOP + CHART_PLOT_HEIGHT - height,
                "height": height,
                "center": x + CHART_BAR // 2,
                "count_y": CHART_TOP + CHART_PLOT_HEIGHT - height - 4,
            }
        )
    return {
        "bars": bars,
        "bar_width": CHART_BAR,
        "width": CHART_LEFT * 2 + 24 * step - CHART_GAP,
        "height": CHART_TOP + CHART_PLOT_HEIGHT + 24,
        "baseline": CHART_TOP + CHART_PLOT_HEIGHT,
        "label_y": CHART_TOP + CHART_PLOT_HEIGHT + 16,
        "max_gross": top,
    }


def _zone_store(request: HttpRequest) -> Store | None:
    """The store whose zone the dates are in: the one shown; None for every store (settings.TIME_ZONE)."""
    try:
        return _store(request)
    except UnknownStore:
        return None


@require_safe
def sales_report_view(request: HttpRequest) -> HttpResponse:
    """The page, its dates (and "today") in the zone of the store shown, or the installation's for every store."""
    _check_permission(request)
    return render_in_zone(zone_of(_zone_store(request)), _sales_report, request)


def _sales_report(request: HttpRequest) -> HttpResponse:
    raw_start, raw_end = request.GET.get("start"), request.GET.get("end")
    context = {
        **admin.site.each_context(request),
        "title": gettext("Sales"),
        "zone_name": str(timezone.get_current_timezone()),
        "start_value": raw_start or "",
        "end_value": raw_end or "",
        "stores": list(_stores(request).order_by("name").values_list("slug", "name")),
        "store_value": (request.GET.get("store") or "").strip() or getattr(_own_store(request), "slug", ""),
        "max_days": reports.MAX_RANGE_DAYS,
        "error": None,
        "report": None,
    }
    try:
        start, end = reports.parse_range(start=raw_start, end=raw_end)
        store = _store(request)
    except (reports.ReportRangeError, UnknownStore) as exc:
        context["error"] = str(exc)
        return TemplateResponse(request, "admin/reports/sales.html", context)

    report = reports.sales_report(start=start, end=end, store=store)
    query = _range_query(start, end, store)
    context.update(
        {
            "subtitle": gettext("%(store)s, %(start)s to %(end)s")
            % {
                "store": store.name if store else gettext("All stores"),
                "start": date_format(start, "SHORT_DATE_FORMAT"),
                "end": date_format(end, "SHORT_DATE_FORMAT"),
            },
            "start_value": start.isoformat(),
            "end_value": end.isoformat(),
            "store": store,
            "report": report,
            "chart": _hour_chart(report["hours"]),
            "sales_csv_url": f"{reverse('sales-report-csv')}?{query}",
            "section_csv_urls": [
                (section, f"{reverse('sales-report-csv')}?{_range_query(start, end, store, section=section)}")
                for section in reports.SALES_CSV_SECTIONS
                if section != "days"
            ],
            "payments_csv_url": f"{reverse('payments-report-csv')}?{query}",
        }
    )
    return TemplateResponse(request, "admin/reports/sales.html", context)


def _csv_range(request: HttpRequest):
    """The range of an export; "today" (a missing end) in the zone of its store, as on the page."""
    with timezone.override(zone_of(_zone_store(request))):
        return reports.parse_range(start=request.GET.get("start"), end=request.GET.get("end"))


@require_safe
def sales_csv_view(request: HttpRequest) -> HttpResponse:
    _check_permission(request)
    section = request.GET.get("section") or "days"
    if section not in reports.SALES_CSV_SECTIONS:
        return _bad_request(
            gettext("Unknown section; use one of: %(sections)s.") % {"sections": ", ".join(reports.SALES_CSV_SECTIONS)}
        )
    try:
        start, end = _csv_range(request)
        store = _store(request)
    except (reports.ReportRangeError, UnknownStore) as exc:
        return _bad_request(str(exc))
    name = "sales" if section == "days" else f"sales-{section}"
    return _csv_response(
        reports.sales_csv_rows(start=start, end=end, section=section, store=store), _filename(name, start, end, store)
    )


@require_safe
def payments_csv_view(request: HttpRequest) -> HttpResponse:
    _check_permission(request)
    try:
        start, end = _csv_range(request)
        store = _store(request)
    except (reports.ReportRangeError, UnknownStore) as exc:
        return _bad_request(str(exc))
    return _csv_response(
        reports.payments_csv_rows(start=start, end=end, store=store), _filename("payments", start, end, store)
    )
