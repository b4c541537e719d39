"""The back office for the menu, customers, stores and their staff, terminals and orders.

Money and status are read-only here: orders move only through actions that call `orders.services` (or
`payments.services.checkout` for money taken at the counter). Kitchen staff and cashiers see only their
store's orders.
"""

import re
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, QuerySet
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_noop, ngettext
from django.utils.translation import gettext_lazy as _

from kiosk.audit import audit, snapshot
from kiosk.problems import DomainError
from kiosk.roles import STORE_ROLES, works_in_one_store
from kiosk.store_time import StoreTimeZoneMixin, common_store, home_store, render_in_zone, zone_of
from orders import services
from orders.cpf import mask_cpf, mask_email, normalize_cpf
from orders.models import (
    Category,
    Customer,
    Option,
    OptionGroup,
    Order,
    OrderItem,
    Product,
    StaffMember,
    Store,
    Terminal,
)
from orders.selectors import item_options, staff_store
from payments.models import Payment
from payments.services import checkout as payment_checkout

# Amounts staff type are read and shown as people write them: "10,00" in Portuguese, "10.00" in English.
MONEY_INPUT = {models.DecimalField: {"localize": True}}


@admin.register(Category)
class CategoryAdmin(StoreTimeZoneMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "position"]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


class OptionGroupInline(admin.TabularInline):
    """A product's option groups (a combo's slots); "Change" opens a group with its options."""

    model = OptionGroup
    fields = ["name", "min_choices", "max_choices", "position"]
    extra = 0
    show_change_link = True


@admin.register(Product)
class ProductAdmin(StoreTimeZoneMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "category", "price", "active", "stock", "available"]
    list_editable = ["price", "active", "stock"]
    list_filter = ["active", "kind", "category"]
    list_select_related = ["category"]
    search_fields = ["name"]
    filter_horizontal = ["suggestions"]
    inlines = [OptionGroupInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}, **MONEY_INPUT}

    @admin.display(boolean=True, description=_("available"))
    def available(self, product: Product) -> bool:
        return product.is_available

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # old orders point at products: deactivate instead


class OptionInline(admin.TabularInline):
    model = Option
    fields = ["name", "price", "product", "active", "position"]
    extra = 1
    formfield_overrides = MONEY_INPUT

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "product":  # a combo's part is an item
            kwargs["queryset"] = Product.objects.filter(kind=Product.Kind.ITEM)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(OptionGroup)
class OptionGroupAdmin(StoreTimeZoneMixin, admin.ModelAdmin):
    """A group of options ("Adicionais") or a combo's slot ("Bebida", each option naming a product)."""

    list_display = ["name", "product", "min_choices", "max_choices", "position"]
    list_filter = ["product__kind", "product"]
    list_select_related = ["product"]
    search_fields = ["name", "product__name"]
    inlines = [OptionInline]


@admin.register(Option)
class OptionAdmin(StoreTimeZoneMixin, admin.ModelAdmin):
    """Every option in one list: untick "active" when one runs out, and the kiosks grey it out at once."""

    formfield_overrides = MONEY_INPUT
    list_display = ["name", "group", "price", "product", "active", "available"]
    list_editable = ["active"]
    list_filter = ["active", "group__product"]
    list_select_related = ["group__product", "product"]
    search_fields = ["name", "group__name", "group__product__name"]

    @admin.display(boolean=True, description=_("available"))
    def available(self, option: Option) -> bool:
        return option.is_available

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "product":
            kwargs["queryset"] = Product.objects.filter(kind=Product.Kind.ITEM)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


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


class AnonymisedFilter(admin.SimpleListFilter):
    """Customers anonymised past the retention period (orders/privacy.py), or not."""

    title = _("anonymised (LGPD)")
    parameter_name = "anonymised"

    def lookups(self, request, model_admin):
        return [("yes", _("Anonymised")), ("no", _("Not anonymised"))]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(anonymised_at__isnull=self.value() == "no")
        return queryset


@admin.register(Customer)
class CustomerAdmin(CPFSearchMixin, StoreTimeZoneMixin, admin.ModelAdmin):
    form = CustomerForm
    list_display = ["masked_cpf", "name", "masked_email", "created_at", "anonymised_at"]
    list_filter = [AnonymisedFilter]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at", "anonymised_at"]

    @admin.display(description="CPF", ordering="cpf")
    def masked_cpf(self, customer: Customer) -> str:
        return gettext("Anonymised") if customer.anonymised_at else mask_cpf(customer.cpf)

    def has_change_permission(self, request, obj=None) -> bool:
        # Nothing is left to edit on an anonymised customer: its page is read-only.
        return super().has_change_permission(request, obj) and not (obj is not None and obj.anonymised_at)

    @admin.display(description=_("e-mail"))
    def masked_email(self, customer: Customer) -> str:
        return mask_email(customer.email)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- Stores, their staff and terminals ------------------------------------------------------------


def in_staff_store(user, queryset: QuerySet, store_field: str = "store") -> QuerySet:
    """Kitchen staff and cashiers see only their store's rows (none without a store); managers every store's."""
    if user.is_superuser or not works_in_one_store(user):
        return queryset
    store = staff_store(user)
    return queryset.filter(**{store_field: store}) if store else queryset.none()


class StoreTerminalInline(admin.TabularInline):
    """A store's terminals, read-only here: "Change" opens the terminal."""

    model = Terminal
    fields = ["name", "external_pos_id", "active", "user"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class StoreStaffInline(admin.TabularInline):
    model = StaffMember
    fields = ["user"]
    extra = 0
    verbose_name_plural = _("kitchen and cashier logins working here")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = _store_role_users()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def _store_role_users() -> QuerySet[User]:
    return User.objects.filter(groups__name__in=STORE_ROLES).distinct().order_by("username")


@admin.register(Store)
class StoreAdmin(StoreTimeZoneMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "address", "time_zone", "offers_eat_in", "offers_takeaway", "active", "terminals"]
    list_filter = ["active"]
    search_fields = ["name", "slug", "address"]
    prepopulated_fields = {"slug": ["name"]}
    fields = ["name", "slug", "address", "opening_hours", "time_zone", "offers_eat_in", "offers_takeaway", "active"]
    inlines = [StoreTerminalInline, StoreStaffInline]

    def page_store(self, request, object_id=None):
        # A store's own page is in its zone.
        store = home_store(request.user)
        if store is None and object_id is not None and str(object_id).isdigit():
            store = Store.objects.filter(pk=int(object_id)).first()
        return store

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(terminal_count=Count("terminals"))

    @admin.display(description=_("terminals"), ordering="terminal_count")
    def terminals(self, store: Store) -> str:
        url = reverse("admin:orders_terminal_changelist") + f"?store__id__exact={store.pk}"
        return format_html('<a href="{}">{}</a>', url, store.terminal_count)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # orders and terminals point at it: deactivate instead


@admin.register(StaffMember)
class StaffMemberAdmin(StoreTimeZoneMixin, admin.ModelAdmin):
    """Which store a kitchen or cashier login works in: it sees that store's orders only."""

    list_display = ["user", "store"]
    list_filter = ["store"]
    list_select_related = ["user", "store"]
    search_fields = ["user__username", "store__name"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = _store_role_users()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class StaffMemberInline(admin.StackedInline):
    model = StaffMember
    can_delete = True
    verbose_name_plural = _("store (kitchen and cashier logins)")


admin.site.unregister(User)


@admin.register(User)
class KioskUserAdmin(StoreTimeZoneMixin, UserAdmin):
    """Django's user admin, with the store a kitchen or cashier login works in."""

    inlines = [*UserAdmin.inlines, StaffMemberInline]


@admin.register(Terminal)
class TerminalAdmin(StoreTimeZoneMixin, admin.ModelAdmin):
    store_lookup = "store"
    list_display = ["name", "store", "external_pos_id", "active", "user"]
    list_editable = ["active"]
    list_filter = ["store", "active"]
    list_select_related = ["store", "user"]
    search_fields = ["name", "store__name", "external_pos_id"]
    raw_id_fields = ["user"]


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    fields = ["product_name", "choices", "unit_price", "quantity", "note", "line_total"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("options")

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("orders.view_order")  # the lines are part of the order

    @admin.display(description=_("options"))
    def choices(self, item: OrderItem) -> str:
        """E.g. "Lanche: X-Burger [Retirar: Cebola, Adicionais: Bacon (+4.00)]; Bebida: Suco (+2.50)"."""
        return "; ".join(_choice_text(choice) for choice in item_options(item)) or "-"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _choice_text(choice: dict) -> str:
    name = f"{choice['quantity']} x {choice['name']}" if choice["quantity"] > 1 else choice["name"]
    text = f"{choice['group']}: {name}" + (f" (+{number_format(choice['price'], 2)})" if choice["price"] else "")
    if choice.get("options"):
        text += " [" + ", ".join(_choice_text(part) for part in choice["options"]) + "]"
    return text


def apply_audited(modeladmin, request, orders, description: str, apply) -> int:
    """Runs `apply` (a service call) on each order, audits each change and reports each refusal by order
    number; returns how many orders changed. `description` is in English, as the audit trail keeps it (the
    back office shows it translated)."""
    done = 0
    for order in orders:
        before = snapshot(order, AUDITED_ORDER_FIELDS)
        try:
            apply(order)
        except DomainError as exc:
            message = gettext("Order %(order)s: %(reason)s") % {"order": order, "reason": exc.detail}
            modeladmin.message_user(request, message, level=messages.ERROR)
            continue
        order.refresh_from_db()
        audit(
            user=request.user,
            obj=order,
            action=description,
            before=before,
            after=snapshot(order, AUDITED_ORDER_FIELDS),
        )
        done += 1
    return done


def _status_action(name: str, description: str, apply):
    """An admin action that runs one service per selected order, audits each change and reports each
    refusal by order number. `description`: English, marked with gettext_noop (the audit trail keeps it so)."""

    def action(modeladmin, request, queryset: QuerySet[Order]):
        done = apply_audited(modeladmin, request, queryset.order_by("pk"), description, lambda o: apply(o, request))
        if done:
            modeladmin.message_user(request, orders_done_message(gettext(description), done), level=messages.SUCCESS)

    action.__name__ = name
    action.short_description = _(description)
    action.allowed_permissions = ("change",)
    return action


def orders_done_message(action: str, count: int) -> str:
    return ngettext("%(action)s: %(count)d order.", "%(action)s: %(count)d orders.", count) % {
        "action": action,
        "count": count,
    }


AUDITED_ORDER_FIELDS = ["status", "cancel_reason", "total"]
COUNTER_METHODS = [(m.value, m.label) for m in (Payment.Method.CASH, Payment.Method.CARD_OUTSIDE)]
# What the audit trail says of a counter payment, by method (English, shown translated).
COUNTER_PAYMENT_ACTIONS = {
    Payment.Method.CASH: gettext_noop("Paid at the counter (Cash)"),
    Payment.Method.CARD_OUTSIDE: gettext_noop("Paid at the counter (Card (machine outside Mercado Pago))"),
}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


class CounterPaymentForm(forms.Form):
    method = forms.ChoiceField(choices=COUNTER_METHODS, widget=forms.RadioSelect, label=_("Paid with"))


@admin.register(Order)
class OrderAdmin(CPFSearchMixin, StoreTimeZoneMixin, admin.ModelAdmin):
    store_lookup = "store"
    cpf_lookup = "customer__cpf"
    list_display = ["__str__", "store", "status", "total", "dining", "terminal", "customer_cpf", "created_at"]
    list_filter = ["status", "store", "dining", "terminal", "business_date"]
    list_select_related = ["store", "terminal", "customer"]
    date_hierarchy = "created_at"
    search_fields = ["=number", "=id"]
    inlines = [OrderItemInline]
    fields = [
        "id",
        "number",
        "business_date",
        "store",
        "status",
        "total",
        "dining",
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
        "pay_at_counter",
        _status_action(
            "start_preparing",
            gettext_noop("Kitchen: start preparing"),
            lambda o, r: services.order_advance(order_id=o.pk, status=Order.Status.IN_PREPARATION),
        ),
        _status_action(
            "mark_ready",
            gettext_noop("Kitchen: ready for pickup"),
            lambda o, r: services.order_advance(order_id=o.pk, status=Order.Status.READY),
        ),
        _status_action(
            "mark_completed",
            gettext_noop("Kitchen: handed over"),
            lambda o, r: services.order_advance(order_id=o.pk, status=Order.Status.COMPLETED),
        ),
        _status_action(
            "cancel_unpaid",
            gettext_noop("Cancel unpaid order"),
            lambda o, r: payment_checkout.order_cancel_unpaid(
                order_id=o.pk, reason=Order.CancelReason.STAFF, actor=r.user.get_username()
            ),
        ),
    ]

    @admin.display(description="CPF")
    def customer_cpf(self, order: Order) -> str:
        if order.customer and order.customer.anonymised_at:
            return gettext("Anonymised")
        return mask_cpf(order.customer.cpf) if order.customer else "-"

    def get_queryset(self, request):
        return in_staff_store(request.user, super().get_queryset(request))

    def has_add_permission(self, request) -> bool:
        return False  # orders come from kiosks

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # --- Money taken at the counter --------------------------------------------------------------

    def has_counter_payment_permission(self, request) -> bool:
        return request.user.has_perm("payments.record_counter_payment")

    @admin.action(
        description=_("Paid at the counter (cash, or card outside Mercado Pago)"), permissions=["counter_payment"]
    )
    def pay_at_counter(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:orders_order_counter_payment')}?ids={ids}")

    def get_urls(self):
        return [
            path(
                "counter-payment/",
                self.admin_site.admin_view(self.counter_payment_view),
                name="orders_order_counter_payment",
            ),
            *super().get_urls(),
        ]

    def counter_payment_view(self, request):
        """The cashier says how the customer paid; each order is paid with exactly its total (services:
        `order_pay_at_counter`), audited, and sent to the kitchen. Another store's orders are not found."""
        if not self.has_counter_payment_permission(request):  # checked again: the URL can be typed directly
            raise PermissionDenied
        raw_ids = request.POST.get("ids") or request.GET.get("ids") or ""
        ids = [i.strip() for i in raw_ids.split(",") if _UUID.match(i.strip())]
        orders = list(self.get_queryset(request).filter(pk__in=ids).select_related("store").order_by("created_at"))
        if not orders:
            raise Http404
        zone = zone_of(home_store(request.user) or common_store(order.store for order in orders))
        return render_in_zone(zone, self._counter_payment, request, orders)

    def _counter_payment(self, request, orders: list[Order]):
        form = CounterPaymentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            method = form.cleaned_data["method"]
            action = COUNTER_PAYMENT_ACTIONS[method]
            actor = request.user.get_username()
            done = apply_audited(
                self,
                request,
                orders,
                action,
                lambda order: payment_checkout.order_pay_at_counter(
                    order_id=order.pk, method=method, amount=order.total, actor=actor
                ),
            )
            if done:
                message = ngettext(
                    "%(action)s: %(count)d order, to the kitchen.",
                    "%(action)s: %(count)d orders, to the kitchen.",
                    done,
                ) % {"action": gettext(action), "count": done}
                self.message_user(request, message, level=messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:orders_order_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Paid at the counter"),
            "orders": orders,
            "ids": ",".join(str(order.pk) for order in orders),
            "total": sum((o.total for o in orders if o.status == Order.Status.AWAITING_PAYMENT), Decimal("0.00")),
            "form": form,
        }
        return TemplateResponse(request, "admin/orders/order/counter_payment.html", context)
