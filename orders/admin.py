"""The back office for the menu, customers, terminals and orders.

Money and status are read-only here: orders move only through actions that call `orders.services`.
"""

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from kiosk.audit import audit, snapshot
from kiosk.problems import DomainError
from orders import services
from orders.cpf import mask_cpf, mask_email, normalize_cpf
from orders.models import Category, Customer, Order, OrderItem, Product, Terminal
from payments.services import checkout as payment_checkout


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "position"]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "price", "active", "stock", "available"]
    list_editable = ["price", "active", "stock"]
    list_filter = ["active", "category"]
    list_select_related = ["category"]
    search_fields = ["name"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(boolean=True, description=_("available"))
    def available(self, product: Product) -> bool:
        return product.is_available

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # old orders point at products: deactivate instead


class CPFSearchMixin:
    """Lets staff search by CPF typed with or without dots and dash."""

    cpf_lookup = "cpf"

    def get_search_results(self, request, queryset, search_term):
        try:
            digits = normalize_cpf(search_term)
        except Exception:  # not a CPF: an ordinary search
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(**{self.cpf_lookup: digits}), False


class CustomerForm(forms.ModelForm):
    cpf = forms.CharField(label="CPF", max_length=20)

    class Meta:
        model = Customer
        fields = ["cpf", "name", "email"]

    def clean_cpf(self) -> str:
        return normalize_cpf(self.cleaned_data["cpf"])  # staff may type the CPF with dots and dash


@admin.register(Customer)
class CustomerAdmin(CPFSearchMixin, admin.ModelAdmin):
    form = CustomerForm
    list_display = ["masked_cpf", "name", "masked_email", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="CPF", ordering="cpf")
    def masked_cpf(self, customer: Customer) -> str:
        return mask_cpf(customer.cpf)

    @admin.display(description=_("e-mail"))
    def masked_email(self, customer: Customer) -> str:
        return mask_email(customer.email)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Terminal)
class TerminalAdmin(admin.ModelAdmin):
    list_display = ["name", "store", "external_pos_id", "active", "user"]
    list_editable = ["active"]
    list_filter = ["store", "active"]
    search_fields = ["name", "store", "external_pos_id"]
    raw_id_fields = ["user"]


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    fields = ["product_name", "unit_price", "quantity", "note", "line_total"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _status_action(name: str, description: str, apply):
    """An admin action that runs one service per selected order, audits each change and reports each
    refusal by order number."""

    def action(modeladmin, request, queryset: QuerySet[Order]):
        done = 0
        for order in queryset.order_by("pk"):
            before = snapshot(order, AUDITED_ORDER_FIELDS)
            try:
                changed = apply(order, request)
            except DomainError as exc:
                modeladmin.message_user(request, f"Order {order}: {exc.detail}", level=messages.ERROR)
                continue
            changed.refresh_from_db()
            audit(
                user=request.user,
                obj=changed,
                action=description,
                before=before,
                after=snapshot(changed, AUDITED_ORDER_FIELDS),
            )
            done += 1
        if done:
            modeladmin.message_user(request, f"{description}: {done} order(s).", level=messages.SUCCESS)

    action.__name__ = name
    action.short_description = description
    action.allowed_permissions = ("change",)
    return action


AUDITED_ORDER_FIELDS = ["status", "cancel_reason", "total"]


@admin.register(Order)
class OrderAdmin(CPFSearchMixin, admin.ModelAdmin):
    cpf_lookup = "customer__cpf"
    list_display = ["__str__", "status", "total", "terminal", "customer_cpf", "created_at"]
    list_filter = ["status", "terminal", "business_date"]
    list_select_related = ["terminal", "customer"]
    date_hierarchy = "created_at"
    search_fields = ["=number", "=id"]
    inlines = [OrderItemInline]
    fields = [
        "id",
        "number",
        "business_date",
        "status",
        "total",
        "terminal",
        "customer",
        "cancel_reason",
        "created_at",
        "received_at",
        "in_preparation_at",
        "ready_at",
        "completed_at",
        "cancelled_at",
    ]
    readonly_fields = fields
    actions = [
        _status_action(
            "mark_paid",
            "Mark as paid (manual, outside Mercado Pago)",
            lambda o, r: payment_checkout.order_mark_paid_outside(order_id=o.pk, actor=r.user.get_username()),
        ),
        _status_action(
            "start_preparing",
            "Kitchen: start preparing",
            lambda o, r: services.order_advance(order_id=o.pk, status=Order.Status.IN_PREPARATION),
        ),
        _status_action(
            "mark_ready",
            "Kitchen: ready for pickup",
            lambda o, r: services.order_advance(order_id=o.pk, status=Order.Status.READY),
        ),
        _status_action(
            "mark_completed",
            "Kitchen: handed over",
            lambda o, r: services.order_advance(order_id=o.pk, status=Order.Status.COMPLETED),
        ),
        _status_action(
            "cancel_unpaid",
            "Cancel unpaid order",
            lambda o, r: payment_checkout.order_cancel_unpaid(
                order_id=o.pk, reason=Order.CancelReason.STAFF, actor=r.user.get_username()
            ),
        ),
    ]

    @admin.display(description="CPF")
    def customer_cpf(self, order: Order) -> str:
        return mask_cpf(order.customer.cpf) if order.customer else "-"

    def has_add_permission(self, request) -> bool:
        return False  # orders come from kiosks

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
