"""Top-level routes: admin, the versioned REST API, its schema and docs, and health checks."""

from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework_simplejwt.views import TokenBlacklistView, TokenRefreshView

from kiosk import checks, screens
from kiosk.auth import TokenObtainView
from kiosk.metrics import metrics_view
from kiosk.problems import problem_json_response
from kiosk.worker import alive_workers
from payments import report_views


def healthz(request):
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: the database answers and can convert dates to the local time zone; the workers' heartbeats
    are reported (and required with READYZ_REQUIRE_WORKER)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        missing_timezones = checks.timezone_tables_missing()
        workers = alive_workers()
    except Exception:  # any database failure means "not ready", never a crash
        return problem_json_response(status=503, code="database_unavailable", detail="The database is not answering.")
    if missing_timezones:
        return problem_json_response(
            status=503,
            code="timezone_tables_missing",
            detail=f"{checks.timezone_tables_message()} {checks.TIMEZONE_TABLES_HINT}",
        )
    if not workers and settings.READYZ_REQUIRE_WORKER:
        return problem_json_response(
            status=503,
            code="worker_not_running",
            detail=f"No worker (manage.py run_worker) has beaten within {settings.WORKER_STALE_SECONDS} s.",
            workers_alive=0,
        )
    return JsonResponse({"status": "ok", "workers_alive": workers})


api_v1 = [
    re_path(r"^auth/token/?$", TokenObtainView.as_view(), name="token-obtain"),
    re_path(r"^auth/token/refresh/?$", TokenRefreshView.as_view(), name="token-refresh"),
    re_path(r"^auth/logout/?$", TokenBlacklistView.as_view(), name="logout"),
    path("", include("orders.urls")),
    path("", include("payments.urls")),
    path("", include("kiosk.events.urls")),
]


@csrf_exempt  # a POST to a path that does not exist is a 404, not a CSRF failure
def api_not_found(request, *args, **kwargs):
    """Any other /api/ path: a problem+json 404, also with DEBUG on (Django's debug 404 page is HTML)."""
    return problem_json_response(
        status=404, code="not_found", detail=gettext("No API endpoint at %(path)s.") % {"path": request.path}
    )


ADMIN = settings.ADMIN_URL  # "admin/" unless the ADMIN_URL setting moves the back office

urlpatterns = [
    # Before admin.site.urls, whose catch-all would otherwise answer these paths.
    path(f"{ADMIN}reports/sales/", admin.site.admin_view(report_views.sales_report_view), name="sales-report"),
    path(f"{ADMIN}reports/sales.csv", admin.site.admin_view(report_views.sales_csv_view), name="sales-report-csv"),
    path(
        f"{ADMIN}reports/payments.csv",
        admin.site.admin_view(report_views.payments_csv_view),
        name="payments-report-csv",
    ),
    path(ADMIN, admin.site.urls),
    path("api/v1/", include(api_v1)),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(http_method_names=["get", "head"]), name="schema"),
    re_path(
        r"^api/docs/?$",
        # The split view serves Swagger UI's start-up script as a file: no inline script, so the CSP holds.
        SpectacularSwaggerSplitView.as_view(url_name="schema", http_method_names=["get", "head"]),
        name="api-docs",
    ),
    # The screens (kiosk/screens.py): pages over the REST API, and the words their scripts use.
    path("kiosk/", screens.kiosk_screen, name="kiosk-screen"),
    path("kitchen/", screens.kitchen_screen, name="kitchen-screen"),
    path("counter/", screens.counter_screen, name="counter-screen"),
    path("pickup/<slug:store>/", screens.pickup_screen, name="pickup-screen"),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    *([path("mp-simulator/", include("payments.simulator.urls"))] if settings.MERCADOPAGO_SIMULATOR else []),
    re_path(r"^api/", api_not_found),
]

handler400 = "kiosk.problems.handler400"
handler404 = "kiosk.problems.handler404"
handler500 = "kiosk.problems.handler500"
admin.site.site_header = _("Kiosk back office")
admin.site.site_title = _("Kiosk back office")
