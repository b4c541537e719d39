"""The back office for payments: the whole story of each payment, the review queue, refunds, the inbox.

Money and state are read-only here. Every action goes through `payments/services/` (or `payments.webhooks`)
and is audited twice: Django's LogEntry and our own append-only AuditRecord.
"""

import json
import re
import uuid
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join

from kiosk.admin import ReadOnlyMixin
from kiosk.audit import audit, snapshot
from kiosk.problems import DomainError
from orders.admin import CPFSearchMixin, in_staff_store
from orders.cpf import mask_cpf
from orders.models import Terminal
from payments import selectors, webhooks
from payments.gateway import GatewayError, GatewayRejected
from payments.models import Payment, PaymentEvent, Refund, WebhookDelivery
from payments.services import refunds, review

AUDITED_PAYMENT_FIELDS = ["status", "amount", "paid_amount", "needs_review", "review_reason"]


def _pretty(payload) -> str:
    if payload in (None, "", {}):
        return "-"
    return format_html("<details><summary>payload</summary><pre>{}</pre></details>", json.dumps(payload, indent=2))


class PaymentEventInline(ReadOnlyMixin, admin.TabularInline):
    model = PaymentEvent
    verbose_name_plural = "ledger (newest first)"
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
    fields = [
        "created_at", "amount", "status", "provider_status", "confirmed_at", "reason", "requested_by",
        "provider_refund_id", "attempts", "error",
    ]  # fmt: skip
    readonly_fields = fields
    extra = 0


class WebhookDeliveryInline(ReadOnlyMixin, admin.TabularInline):
    model = WebhookDelivery
    verbose_name_plural = "notifications received"
    fields = ["received_at", "topic", "action", "status", "signature_valid", "last_error"]
    readonly_fields = fields
    extra = 0
    show_change_link = True


def _money(value) -> str:
    """An amount as the person reads it: "61,70" in Portuguese, "61.70" in English (as the form takes it)."""
    return number_format(value, decimal_pos=2)


class RefundForm(forms.Form):
    # localize: "10,00" in Portuguese, "10.00" in English.
    amount = forms.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0.01"), localize=True)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=500)
    confirm_order_number = forms.IntegerField(help_text="Type the order's pickup number to confirm.")
    # One per form shown: submitting the same form twice (a double click, a re-sent page) is one refund.
    form_key = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput)

    def __init__(self, *args, payment: Payment, refundable: Decimal, **kwargs):
        super().__init__(*args, **kwargs)
        self.payment, self.refundable = payment, refundable
        self.fields["form_key"].initial = uuid.uuid4().hex
        self.fields["amount"].initial = refundable
        self.fields[
            "amount"
        ].help_text = f"At most {_money(refundable)} (paid {_money(payment.paid_amount)}, minus refunds)."

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount > self.refundable:
            raise forms.ValidationError(f"At most {_money(self.refundable)} can be refunded.")
        return amount

    def clean_confirm_order_number(self):
        number = self.cleaned_data["confirm_order_number"]
        if number != self.payment.order.number:
            raise forms.ValidationError("That is not this payment's order number.")
        return number


def _refund_message(refund: Refund) -> str:
    if refund.status == Refund.Status.SUCCEEDED:
        return f"Refunded {refund.amount} through Mercado Pago."
    if refund.status == Refund.Status.PENDING:
        return (
            f"Mercado Pago took the refund of {refund.amount}. It counts as refunded once Mercado Pago confirms "
            "it (usually within seconds); its amount is reserved meanwhile."
        )
    return (
        f"Mercado Pago is busy with another refund of this order: this refund of {refund.amount} is held and "
        "sent again automatically (reconcile_payments)."
    )


class ReviewForm(forms.Form):
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=1000, help_text="What was checked or done (required)."
    )


class TerminalFilter(admin.SimpleListFilter):
    """By terminal, named with its store: one query for the choices, however many terminals."""

    title = "terminal"
    parameter_name = "order__terminal__id__exact"

    def lookups(self, request, model_admin):
        return [(str(t.pk), str(t)) for t in Terminal.objects.select_related("store")]

    def queryset(self, request, queryset):
        value = self.value()
        wanted = value and value.isascii() and value.isdigit() and len(value) <= 18
        return queryset.filter(order__terminal_id=int(value)) if wanted else queryset


@admin.register(Payment)
class PaymentAdmin(CPFSearchMixin, ReadOnlyMixin, admin.ModelAdmin):
    cpf_lookup = "order__customer__cpf"
    list_display = [
        "id",
        "order_number",
        "status",
        "kiosk_status",
        "method",
        "amount",
        "paid_amount",
        "review",
        "terminal",
        "customer_cpf",
        "created_at",
    ]
    list_filter = ["status", "needs_review", "method", "order__store", TerminalFilter]
    list_select_related = ["order", "order__terminal", "order__customer"]
    list_per_page = 100
    date_hierarchy = "created_at"
    search_fields = ["=order__number", "=order__id", "=provider_order_id", "=provider_payment_id", "=reference"]
    readonly_fields = [
        "order_link", "order_items", "provider", "method", "amount", "paid_amount", "refunded", "refund_pending", "refundable",
        "status", "kiosk_status",
        "needs_review",
        "review_reason", "provider_order_id", "provider_payment_id", "reference", "provider_status",
        "provider_status_detail", "last_error", "expires_at", "paid_at", "created_at", "updated_at",
    ]  # fmt: skip
    fields = readonly_fields
    inlines = [PaymentEventInline, RefundInline, WebhookDeliveryInline]
    actions = ["sync_with_mercadopago", "approve_and_send_to_kitchen", "mark_reviewed", "refund"]

    def get_queryset(self, request):
        return in_staff_store(request.user, super().get_queryset(request), "order__store")

    # --- what the pages show -----------------------------------------------------------------------

    @admin.display(description="order", ordering="order__number")
    def order_number(self, payment: Payment) -> str:
        return str(payment.order)

    @admin.display(description="no review needed", boolean=True, ordering="needs_review")
    def review(self, payment: Payment) -> bool:
        return not payment.needs_review

    @admin.display(description="the kiosk shows")
    def kiosk_status(self, payment: Payment) -> str:
        return selectors.kiosk_status(payment)

    @admin.display(description="terminal")
    def terminal(self, payment: Payment) -> str:
        return payment.order.terminal.name

    @admin.display(description="CPF")
    def customer_cpf(self, payment: Payment) -> str:
        customer = payment.order.customer
        return mask_cpf(customer.cpf) if customer else "-"

    @admin.display(description="order")
    def order_link(self, payment: Payment) -> str:
        url = reverse("admin:orders_order_change", args=[payment.order_id])
        return format_html(
            '<a href="{}">{}</a> ({}, total {})', url, payment.order, payment.order.status, payment.order.total
        )

    @admin.display(description="items")
    def order_items(self, payment: Payment) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((i.quantity, i.product_name, i.unit_price, i.line_total, i.note) for i in payment.order.items.all()),
        )
        return format_html(
            "<table><tr><th>qty</th><th>item</th><th>unit</th><th>total</th><th>note</th></tr>{}</table>", rows
        )

    @admin.display(description="refunded (from the ledger)")
    def refunded(self, payment: Payment) -> Decimal:
        return payment.refunded_amount()

    @admin.display(description="refunds waiting for Mercado Pago's confirmation")
    def refund_pending(self, payment: Payment) -> Decimal:
        return selectors.refund_pending_amount(payment)

    @admin.display(description="still refundable")
    def refundable(self, payment: Payment) -> Decimal:
        return selectors.refundable_amount(payment)

    def has_refund_permission(self, request) -> bool:
        return request.user.has_perm("payments.refund_payment")

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("payments.refund_payment")  # the same trust as giving money back

    def has_sync_permission(self, request) -> bool:
        # The page is read-only for everyone (ReadOnlyMixin); changing a payment by an action is a manager's.
        return request.user.has_perm("payments.change_payment")

    # --- actions ---------------------------------------------------------------------------------

    def _each(self, request, queryset, action: str, run, *, reason: str = ""):
        done = 0
        for payment in queryset.order_by("pk"):
            before = snapshot(payment, AUDITED_PAYMENT_FIELDS)
            try:
                run(payment)
            except (DomainError, GatewayError) as exc:
                self.message_user(
                    request, f"Payment {payment.pk}: {getattr(exc, 'detail', None) or exc}", messages.ERROR
                )
                continue
            payment.refresh_from_db()
            audit(
                user=request.user,
                obj=payment,
                action=action,
                reason=reason,
                before=before,
                after=snapshot(payment, AUDITED_PAYMENT_FIELDS),
            )
            done += 1
        if done:
            self.message_user(request, f"{action}: {done} payment(s).", messages.SUCCESS)

    @admin.action(description="Sync with Mercado Pago", permissions=["sync"])
    def sync_with_mercadopago(self, request, queryset):
        self._each(request, queryset, "Sync with Mercado Pago", lambda p: review.payment_sync(payment_id=p.pk))

    @admin.action(description="Approve and send to kitchen", permissions=["review"])
    def approve_and_send_to_kitchen(self, request, queryset):
        actor = request.user.get_username()
        self._each(
            request,
            queryset,
            "Approve and send to kitchen",
            lambda p: review.payment_review_approve(payment_id=p.pk, actor=actor),
        )

    @admin.action(description="Mark reviewed (with a comment)", permissions=["review"])
    def mark_reviewed(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:payments_payment_review')}?ids={ids}")

    @admin.action(description="Refund", permissions=["refund"])
    def refund(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Refund one payment at a time.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:payments_payment_refund", args=[queryset.get().pk]))

    # --- the intermediate pages ------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<int:object_id>/refund/", self.admin_site.admin_view(self.refund_view), name="payments_payment_refund"
            ),
            path("review/", self.admin_site.admin_view(self.review_view), name="payments_payment_review"),
            *super().get_urls(),
        ]

    def refund_view(self, request, object_id):
        if not self.has_refund_permission(request):  # checked again here: the URL can be typed directly
            raise PermissionDenied
        payment = Payment.objects.select_related("order").filter(pk=object_id).first()
        if payment is None:
            raise Http404
        refundable = selectors.refundable_amount(payment)
        form = RefundForm(request.POST or None, payment=payment, refundable=refundable)
        if request.method == "POST" and form.is_valid():
            before = snapshot(payment, AUDITED_PAYMENT_FIELDS)
            reason = form.cleaned_data["reason"]
            request_key = refunds.request_key_for(caller=f"admin-{request.user.pk}", key=form.cleaned_data["form_key"])
            if Refund.objects.filter(request_key=request_key).exists():
                # The same form sent again (a double click, a re-sent page): that refund is already on its way.
                self.message_user(request, "This refund was already requested; see it below.", messages.INFO)
                return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))
            try:
                refund = refunds.refund_request(
                    payment_id=payment.pk,
                    amount=form.cleaned_data["amount"],
                    reason=reason,
                    actor=request.user.get_username(),
                    request_key=request_key,
                )
            except DomainError as exc:
                form.add_error(None, exc.detail)
            except GatewayRejected as exc:
                form.add_error(None, f"Mercado Pago refused the refund: {exc.message}")
            except GatewayError as exc:
                payment.refresh_from_db()
                audit(
                    user=request.user,
                    obj=payment,
                    action="Refund requested (Mercado Pago unreachable)",
                    reason=reason,
                    before=before,
                    after=snapshot(payment, AUDITED_PAYMENT_FIELDS),
                )
                self.message_user(
                    request,
                    f"Mercado Pago could not take the refund right now ({exc.message}). It stays requested and is "
                    "retried automatically (reconcile_payments); its amount is held meanwhile.",
                    messages.WARNING,
                )
                return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))
            else:
                payment.refresh_from_db()
                audit(
                    user=request.user,
                    obj=payment,
                    action=f"Refund {refund.amount}",
                    reason=reason,
                    before=before,
                    after=snapshot(payment, AUDITED_PAYMENT_FIELDS),
                )
                self.message_user(request, _refund_message(refund), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Refund payment {payment.pk}",
            "payment": payment,
            "refundable": refundable,
            "form": form,
        }
        return TemplateResponse(request, "admin/payments/payment/refund.html", context)

    def review_view(self, request):
        if not self.has_review_permission(request):
            raise PermissionDenied
        raw_ids = request.POST.get("ids") or request.GET.get("ids") or ""
        ids = [int(i) for i in raw_ids.split(",") if re.fullmatch(r"[0-9]{1,18}", i.strip())]
        payments = list(Payment.objects.filter(pk__in=ids).select_related("order"))
        if not payments:
            raise Http404
        form = ReviewForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            comment = form.cleaned_data["comment"]
            self._each(
                request,
                Payment.objects.filter(pk__in=ids),
                "Mark reviewed",
                lambda p: review.payment_review_resolve(
                    payment_id=p.pk, actor=request.user.get_username(), comment=comment
                ),
                reason=comment,
            )
            return HttpResponseRedirect(reverse("admin:payments_payment_changelist") + "?needs_review__exact=1")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Mark payments reviewed",
            "payments": payments,
            "ids": ",".join(str(p.pk) for p in payments),
            "form": form,
        }
        return TemplateResponse(request, "admin/payments/payment/review.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_refund": self.has_refund_permission(request),
            "refund_url": reverse("admin:payments_payment_refund", args=[object_id])
            if str(object_id).isdigit()
            else "",
        }
        return super().change_view(request, object_id, form_url, extra_context)


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
    list_filter = ["status", "topic", "signature_valid", "signature_id_case"]
    date_hierarchy = "received_at"
    search_fields = ["=resource_id", "=request_id"]
    readonly_fields = [
        "received_at", "topic", "action", "resource_id", "request_id", "status", "attempts", "last_error",
        "signature", "signature_valid", "signature_error", "signature_id_case", "dedupe_key", "replay_key",
        "remote_addr", "query", "headers", "body_size", "body",
        "payment", "processed_at", "next_attempt_at",
    ]  # fmt: skip
    fields = readonly_fields
    actions = ["process_again"]

    def has_process_again_permission(self, request) -> bool:
        return request.user.has_perm("payments.change_webhookdelivery")

    @admin.action(description="Process again (fetch from Mercado Pago and apply)", permissions=["process_again"])
    def process_again(self, request, queryset):
        done = 0
        for delivery in queryset.filter(signature_valid=True):
            webhooks.delivery_process(delivery)
            audit(
                user=request.user, obj=delivery, action="Process notification again", after={"status": delivery.status}
            )
            done += 1
        skipped = queryset.exclude(signature_valid=True).count()
        self.message_user(request, f"Processed {done} notification(s) again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} not signed by Mercado Pago.", messages.WARNING)
