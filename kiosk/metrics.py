"""Prometheus metrics: what the process measures as it works, and what the database says at scrape time.

Request counts and latencies by view and status, and database query counts, come from django-prometheus's
middleware and database wrappers. The rest is ours:
- measured by the web processes: Mercado Pago call latency (checkout, and the calls a kiosk's poll makes),
  the circuit breaker's state, orders placed;
- read from the database when `/metrics` is scraped, so they cover the worker's work too: orders and
  payments by status (last 24 h), the review queue, the notification-to-applied lag, task queue depth and
  dead tasks, outgoing webhook deliveries failing and dead.

Under gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR so the counters of every worker process add up;
`/metrics` then reads all of them.
"""

import hmac
import os
from datetime import timedelta

import prometheus_client
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily

MP_CALL_SECONDS = Histogram(
    "kiosk_mercadopago_call_seconds",
    "Time of one call to Mercado Pago's API, retries included, by operation and outcome.",
    ["operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21),
)
# 0 closed, 1 half-open, 2 open. Per process: the worst live process is reported.
MP_BREAKER_STATE = Gauge(
    "kiosk_mercadopago_circuit_breaker_state",
    "Mercado Pago circuit breaker: 0 closed, 1 half-open, 2 open (the worst of the live processes).",
    multiprocess_mode="livemax",
)
BREAKER_STATE_VALUES = {"closed": 0, "half-open": 1, "open": 2}

ORDERS_PLACED = Counter("kiosk_orders_placed", "Orders placed at the kiosks (counted by the web processes).")


def observe_breaker_state(state_name: str) -> None:
    """Called by the gateway's breaker listener with pybreaker's state name."""
    MP_BREAKER_STATE.set(BREAKER_STATE_VALUES.get(state_name, 0))


# --- Read from the database at scrape time ---------------------------------------------------------

LAG_WINDOW = timedelta(minutes=15)
DAY = timedelta(hours=24)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _by_label(name: str, documentation: str, label: str, counts: dict[str, int], known) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value in known:  # every status, also at zero: a series that vanishes breaks rate() and alerts
        family.add_metric([value], counts.get(value, 0))
    return family


class DatabaseCollector:
    """Business gauges from the database: the same figures whichever process is scraped."""

    def collect(self):
        from django_tasks.base import TaskResultStatus
        from django_tasks_db.models import DBTaskResult

        from kiosk.events.models import EventDelivery
        from orders.models import Order
        from payments.models import Payment, WebhookDelivery

        now = timezone.now()
        since = now - DAY

        def counts(queryset) -> dict[str, int]:
            return dict(queryset.values_list("status").annotate(n=Count("pk")).order_by())

        yield _by_label(
            "kiosk_orders_last_24h",
            "Orders created in the last 24 hours, by status.",
            "status",
            counts(Order.objects.filter(created_at__gte=since)),
            Order.Status.values,
        )
        yield _by_label(
            "kiosk_payments_last_24h",
            "Payments created in the last 24 hours, by status.",
            "status",
            counts(Payment.objects.filter(created_at__gte=since)),
            Payment.Status.values,
        )
        yield _gauge(
            "kiosk_review_queue_size",
            "Payments waiting for a person in the review queue.",
            Payment.objects.filter(needs_review=True).count(),
        )
        yield _gauge(
            "kiosk_notifications_pending",
            "Mercado Pago notifications stored and not applied yet.",
            WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).count(),
        )
        lags = sorted(
            (processed - received).total_seconds()
            for received, processed in WebhookDelivery.objects.filter(
                status=WebhookDelivery.Status.PROCESSED, processed_at__gte=now - LAG_WINDOW
            )
            .order_by("-processed_at")
            .values_list("received_at", "processed_at")[:2000]
        )
        lag = GaugeMetricFamily(
            "kiosk_notification_apply_lag_seconds",
            "From a Mercado Pago notification's arrival to its payment being applied, over the last 15 minutes.",
            labels=["quantile"],
        )
        for name, q in (("0.5", 0.5), ("0.95", 0.95), ("1", 1.0)):
            lag.add_metric([name], lags[min(len(lags) - 1, int(q * len(lags)))] if lags else 0.0)
        yield lag
        tasks = counts(DBTaskResult.objects.filter(status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING]))
        yield _by_label(
            "kiosk_tasks_queued",
            "Background tasks waiting (READY, retries included) or running.",
            "status",
            tasks,
            [TaskResultStatus.READY, TaskResultStatus.RUNNING],
        )
        yield _gauge(
            "kiosk_tasks_dead",
            "Background tasks that failed their last attempt (admin: Tasks, 'Run again').",
            DBTaskResult.objects.filter(status=TaskResultStatus.FAILED).count(),
        )
        pending = EventDelivery.objects.filter(status=EventDelivery.Status.PENDING)
        yield _gauge(
            "kiosk_webhook_deliveries_failing",
            "Outgoing webhook deliveries not delivered yet after at least one failed attempt.",
            pending.filter(attempts__gt=0).count(),
        )
        yield _gauge(
            "kiosk_webhook_deliveries_dead",
            "Outgoing webhook deliveries given up on (admin: Event deliveries, 'Send again').",
            EventDelivery.objects.filter(status=EventDelivery.Status.DEAD).count(),
        )


class _Static:
    def __init__(self, *families):
        self.families = families

    def collect(self):
        return self.families


def _authorized(request) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return settings.DEBUG  # no token: open in development, off in production
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics_view(request):
    """`GET /metrics` for Prometheus, with `Authorization: Bearer $METRICS_TOKEN`."""
    if not settings.METRICS_TOKEN and not settings.DEBUG:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    if not _authorized(request):
        response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        process = prometheus_client.generate_latest(registry)
    else:
        process = prometheus_client.generate_latest(prometheus_client.REGISTRY)
    database = CollectorRegistry()
    database.register(DatabaseCollector())
    try:
        business, up = prometheus_client.generate_latest(database), 1
    except DatabaseError:  # the process figures still matter when the database is down
        business, up = b"", 0
    health = CollectorRegistry()
    health.register(_Static(_gauge("kiosk_database_scrape_ok", "1 if the database answered this scrape.", up)))
    body = process + business + prometheus_client.generate_latest(health)
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)
