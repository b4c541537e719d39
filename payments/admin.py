"""Back office for payments: the whole story of each payment, and the notification inbox.

Money and state are read-only here; actions call `payments.services` / `payments.webhooks`.
"""

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from orders.cpf import mask_cpf
from payments import webhooks
from payments.models import Payment, PaymentEvent, Refund, WebhookDelivery


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _pretty(payload) -> str:
    if payload in (None, "", {}):
        return "-"
    return format_html("<details><summary>payload</summary><pre>{}</pre></details>", json.dumps(payload, indent=2))


class PaymentEventInline(ReadOnlyMixin, admin.TabularInline):
    model = PaymentEvent
    fields = [
        "created_at",
        "type",
        "from_status",
        "to_status",
        "amount",
        "actor",
        "message",
        "provider_reference",
        "payload_view",
    ]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]
    extra = 0

    @admin.display(description="payload")
    def payload_view(self, event: PaymentEvent) -> str:
        return _pretty(event.payload)


class RefundInline(ReadOnlyMixin, admin.TabularInline):
    model = Refund
    fields = ["created_at", "amount", "status", "reason", "requested_by", "provider_refund_id", "error"]
    readonly_fields = fields
    extra = 0


class WebhookDeliveryInline(ReadOnlyMixin, admin.TabularInline):
    model = WebhookDelivery
    fields = ["received_at", "topic", "action", "status", "signature_valid", "last_error"]
    readonly_fields = fields
    extra = 0
    show_change_link = True


@admin.register(Payment)
class PaymentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "order_number",
        "status",
        "amount",
        "paid_amount",
        "needs_review",
        "terminal",
        "customer_cpf",
        "created_at",
    ]
    list_filter = ["status", "needs_review", "order__terminal"]
    list_select_related = ["order", "order__terminal", "order__customer"]
    date_hierarchy = "created_at"
    search_fields = [
        "=order__number",
        "=provider_order_id",
        "=provider_payment_id",
        "=reference",
        "=order__customer__cpf",
    ]
    readonly_fields = [
        "order", "reference", "provider_order_id", "provider_payment_id", "amount", "paid_amount", "refunded",
        "status", "provider_status", "provider_status_detail", "needs_review", "review_reason", "last_error",
        "expires_at", "paid_at", "created_at", "updated_at", "qr_data",
    ]  # fmt: skip
    fields = readonly_fields
    inlines = [PaymentEventInline, RefundInline, WebhookDeliveryInline]

    @admin.display(description="order", ordering="order__number")
    def order_number(self, payment: Payment) -> str:
        return str(payment.order)

    @admin.display(description="terminal")
    def terminal(self, payment: Payment) -> str:
        return payment.order.terminal.name

    @admin.display(description="CPF")
    def customer_cpf(self, payment: Payment) -> str:
        customer = payment.order.customer
        return mask_cpf(customer.cpf) if customer else "-"

    @admin.display(description="refunded")
    def refunded(self, payment: Payment) -> str:
        return str(payment.refunded_amount())


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "received_at",
        "topic",
        "action",
        "resource_id",
        "status",
        "signature_valid",
        "attempts",
        "payment",
    ]
    list_filter = ["status", "topic", "signature_valid"]
    date_hierarchy = "received_at"
    search_fields = ["=resource_id", "=request_id"]
    readonly_fields = [
        "received_at", "topic", "action", "resource_id", "request_id", "status", "attempts", "last_error",
        "signature", "signature_valid", "signature_error", "dedupe_key", "remote_addr", "query", "headers", "body",
        "payment", "processed_at", "next_attempt_at",
    ]  # fmt: skip
    fields = readonly_fields
    actions = ["process_again"]

    @admin.action(description="Process again (fetch from Mercado Pago and apply)", permissions=["view"])
    def process_again(self, request, queryset):
        done = 0
        for delivery in queryset.exclude(signature_valid=False):
            webhooks.delivery_process(delivery)
            self.log_change(request, delivery, "Processed again")
            done += 1
        skipped = queryset.filter(signature_valid=False).count()
        self.message_user(request, f"Processed {done} notification(s) again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} with a bad signature.", messages.WARNING)
