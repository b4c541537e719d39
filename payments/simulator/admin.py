"""Read-only admin pages to look into the simulated Mercado Pago (what it thinks happened)."""

from django.contrib import admin

from payments.simulator.models import SimIdempotencyKey, SimOrder, SimPayment, SimRefund


class ReadOnlyAdmin(admin.ModelAdmin):
    """Mercado Pago's state changes only through its API and the pay page, never by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SimPaymentInline(admin.TabularInline):
    model = SimPayment
    extra = 0
    can_delete = False
    fields = ["id", "amount", "paid_amount", "status", "status_detail", "reference_id", "date_approved"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SimOrder)
class SimOrderAdmin(ReadOnlyAdmin):
    list_display = ["id", "external_reference", "total_amount", "status", "status_detail", "created_date"]
    list_filter = ["status"]
    search_fields = ["id", "external_reference"]
    inlines = [SimPaymentInline]


@admin.register(SimRefund)
class SimRefundAdmin(ReadOnlyAdmin):
    list_display = ["id", "payment", "amount", "status", "reference_id", "created_date"]


@admin.register(SimIdempotencyKey)
class SimIdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["key", "user_id", "order", "response_status", "created_at"]
    search_fields = ["key"]
