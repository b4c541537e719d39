"""Read-only admin pages to look into the simulated Mercado Pago (what it thinks happened)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from kiosk.admin import ReadOnlyMixin, code_column, code_filter
from payments.simulator.models import (
    SimChargeback,
    SimIdempotencyKey,
    SimNotification,
    SimOrder,
    SimPayment,
    SimRefund,
)


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Mercado Pago's state changes only through its API and the pay page, never by hand."""


class SimPaymentInline(ReadOnlyMixin, admin.TabularInline):
    model = SimPayment
    extra = 0
    fields = ["id", "amount", "paid_amount", "status", "status_detail", "reference_id", "date_approved"]
    readonly_fields = fields


@admin.register(SimOrder)
class SimOrderAdmin(ReadOnlyAdmin):
    list_display = ["id", "external_reference", "total_amount", "status", "status_detail", "created_date"]
    list_filter = ["status"]
    search_fields = ["id", "external_reference"]
    inlines = [SimPaymentInline]


@admin.register(SimRefund)
class SimRefundAdmin(ReadOnlyAdmin):
    list_display = ["id", "payment", "amount", "status", "outcome", "reference_id", "created_date", "confirm_at"]
    list_filter = ["status"]


@admin.register(SimChargeback)
class SimChargebackAdmin(ReadOnlyAdmin):
    list_display = ["id", "payment", "case_id", "status", "created_date"]


@admin.register(SimNotification)
class SimNotificationAdmin(ReadOnlyAdmin):
    """What the simulated Mercado Pago sent (or still has to send) to the notification URL."""

    list_display = ["created_at", "action", "data_id", "status", "attempts", "due_at", "sent_at", "last_error"]
    list_filter = ["status", code_filter("topic", _("topic")), "action"]
    fields = [
        "url", "topic_code", "action", "data_id", "body", "signature_ts", "request_id", "due_at", "status", "attempts",
        "last_error", "sent_at", "created_at",
    ]  # fmt: skip
    readonly_fields = fields
    topic_code = code_column("topic", _("topic"))
    search_fields = ["data_id", "request_id"]


@admin.register(SimIdempotencyKey)
class SimIdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["key", "user_id", "order", "response_status", "created_at"]
    search_fields = ["key"]
