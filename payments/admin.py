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
from django.template.defaultfilters import linebreaksbr
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, gettext_noop, ngettext
from django.utils.translation import gettext_lazy as _

from kiosk.admin import ReadOnlyMixin, code_column, code_filter
from kiosk.audit import audit, snapshot
from kiosk.problems import DomainError
from kiosk.store_time import StoreTimeZoneMixin, common_store, home_store, render_in_zone, zone_of
from orders.admin import CPFSearchMixin, in_staff_store
from orders.cpf import mask_cpf
from orders.models import Terminal
from payments import selectors, webhooks
from payments.gateway import GatewayError, GatewayRejected
from payments.models import Payment, PaymentEvent, Refund, WebhookDelivery
from payments.services import refunds, review

AUDITED_PAYMENT_FIELDS = ["status", "amount", "paid_amount", "needs_review", "review_reason"]
# What the kiosk is told, as a person reads it: a payment's own status, or "see the counter" for money that did
# not pay the order.
KIOSK_STATUS_LABELS = {**dict(Payment.Status.choices), selectors.UNDER_REVIEW: _("Under review (see the counter)")}


# Ledger lines whose message is a person's words (a refund's reason, a review's comment).
PERSON_TYPED = {PaymentEvent.Type.REFUND_REQUESTED, PaymentEvent.Type.REVIEW_RESOLVED}
# Ledger lines whose message is only the Mercado Pago client's own text (exc.message), which stays English.
GATEWAY_WORDS = {PaymentEvent.Type.QR_FAILED, PaymentEvent.Type.CANCEL_FAILED}


def _status_label(status: str) -> str:
    """A payment status as a person reads it ("-" for none)."""
    return str(KIOSK_STATUS_LABELS.get(status, status)) if status else "-"


def _pretty(payload) -> str:
    if payload in (None, "", {}):
        return "-"
    return format_html(
        "<details><summary>{}</summary><pre>{}</pre></details>", gettext("payload"), json.dumps(payload, indent=2)
    )


class PaymentEventInline(ReadOnlyMixin, admin.TabularInline):
    model = PaymentEvent
    verbose_name_plural = _("ledger (newest first)")
    fields = [
        "created_at",
        "type",
        "from_status_label",
        "to_status_label",
        "amount",
        "actor",
        "note",
        "provider_reference",
        "payload_view",
    ]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]
    extra = 0

    @admin.display(description=_("message"))
    def note(self, event: PaymentEvent):
        """What a person typed (a refund's reason, a review's comment) as typed; what the system noted is written
        in the restaurant's language (payments.services.ledger.note), but for Mercado Pago's own error texts,
        English and marked so. Lines written before the system wrote in the restaurant's language are English
        and cannot be told apart: they are shown as stored, unmarked."""
        if not event.message:
            return "-"
        if event.type in PERSON_TYPED:
            return event.message
        if event.type in GATEWAY_WORDS:
            return format_html('<span lang="en">{}</span>', event.message)
        return event.message

    @admin.display(description=_("from status"))
    def from_status_label(self, event: PaymentEvent) -> str:
        return _status_label(event.from_status)

    @admin.display(description=_("to status"))
    def to_status_label(self, event: PaymentEvent) -> str:
        return _status_label(event.to_status)

    @admin.display(description=_("payload"))
    def payload_view(self, event: PaymentEvent) -> str:
        return _pretty(event.payload)


class RefundInline(ReadOnlyMixin, admin.TabularInline):
    model = Refund
    fields = [
        "created_at", "amount", "status", "provider_status_code", "confirmed_at", "reason", "requested_by",
        "provider_refund_id", "attempts", "error_note",
    ]  # fmt: skip
    readonly_fields = fields
    extra = 0
    provider_status_code = code_column("provider_status", _("Mercado Pago status"))

    @admin.display(description=_("error"))
    def error_note(self, refund: Refund):
        """Why Mercado Pago has not refunded yet: its own text with a few English words of ours around it, as the
        refunds API answers it (`error`); marked English. The ledger says the same in the restaurant's language."""
        return format_html('<span lang="en">{}</span>', refund.error) if refund.error else "-"


class WebhookDeliveryInline(ReadOnlyMixin, admin.TabularInline):
    model = WebhookDelivery
    verbose_name_plural = _("notifications received")
    fields = ["received_at", "topic_code", "action", "status", "signature_valid", "last_error"]
    topic_code = code_column("topic", _("topic"))
    readonly_fields = fields
    extra = 0
    show_change_link = True


def _money(value) -> str:
    """An amount as the person reads it: "61,70" in Portuguese, "61.70" in English (as the form takes it)."""
    return number_format(value, decimal_pos=2)


class RefundForm(forms.Form):
    # localize: "10,00" in Portuguese, "10.00" in English.
    amount = forms.DecimalField(
        label=_("Amount (R$)"), max_digits=10, decimal_places=2, min_value=Decimal("0.01"), localize=True
    )
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}), max_length=500)
    confirm_order_number = forms.IntegerField(
        label=_("Confirm the order number"), help_text=_("Type the order's pickup number to confirm.")
    )
    # One per form shown: submitting the same form twice (a double click, a re-sent page) is one refund.
    form_key = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput)

    def __init__(self, *args, payment: Payment, refundable: Decimal, **kwargs):
        super().__init__(*args, **kwargs)
        self.payment, self.refundable = payment, refundable
        self.fields["form_key"].initial = uuid.uuid4().hex
        self.fields["amount"].initial = refundable
        self.fields["amount"].help_text = gettext("At most %(refundable)s (paid %(paid)s, minus refunds).") % {
            "refundable": _money(refundable),
            "paid": _money(payment.paid_amount),
        }

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount > self.refundable:
            raise forms.ValidationError(
                gettext("At most %(amount)s can be refunded.") % {"amount": _money(self.refundable)}
            )
        return amount

    def clean_confirm_order_number(self):
        number = self.cleaned_data["confirm_order_number"]
        if number != self.payment.order.number:
            raise forms.ValidationError(gettext("That is not this payment's order number."))
        return number


def _refund_message(refund: Refund) -> str:
    amount = _money(refund.amount)
    if refund.status == Refund.Status.SUCCEEDED:
        return gettext("Refunded %(amount)s through Mercado Pago.") % {"amount": amount}
    if refund.status == Refund.Status.PENDING:
        return gettext(
            "Mercado Pago took the refund of %(amount)s. It counts as refunded once Mercado Pago confirms it "
            "(usually within seconds); its amount is reserved meanwhile."
        ) % {"amount": amount}
    return gettext(
        "Mercado Pago is busy with another refund of this order: this refund of %(amount)s is held and sent again "
        "automatically (reconcile_payments)."
    ) % {"amount": amount}


class ReviewForm(forms.Form):
    comment = forms.CharField(
        label=_("Comment"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=1000,
        help_text=_("What was checked or done (required)."),
    )


class TerminalFilter(admin.SimpleListFilter):
    """By terminal, named with its store: one query for the choices, however many terminals."""

    title = _("terminal")
    parameter_name = "order__terminal__id__exact"

    def lookups(self, request, model_admin):
        return [(str(t.pk), str(t)) for t in Terminal.objects.select_related("store")]

    def queryset(self, request, queryset):
        value = self.value()
        wanted = value and value.isascii() and value.isdigit() and len(value) <= 18
        return queryset.filter(order__terminal_id=int(value)) if wanted else queryset


@admin.register(Payment)
class PaymentAdmin(CPFSearchMixin, ReadOnlyMixin, StoreTimeZoneMixin, admin.ModelAdmin):
    store_lookup = "order__store"
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
        "review_notes", "provider_order_id", "provider_payment_id", "reference", "provider_status_code",
        "provider_status_detail_code", "last_error", "expires_at", "paid_at", "created_at", "updated_at",
    ]  # fmt: skip
    fields = readonly_fields
    inlines = [PaymentEventInline, RefundInline, WebhookDeliveryInline]
    # Mercado Pago's own codes ("processed", "accredited"), shown as code.
    provider_status_code = code_column("provider_status", _("Mercado Pago status"))
    provider_status_detail_code = code_column("provider_status_detail", _("Mercado Pago status detail"))
    actions = ["sync_with_mercadopago", "approve_and_send_to_kitchen", "mark_reviewed", "refund"]

    def get_queryset(self, request):
        return in_staff_store(request.user, super().get_queryset(request), "order__store")

    # --- what the pages show -----------------------------------------------------------------------

    @admin.display(description=_("order"), ordering="order__number")
    def order_number(self, payment: Payment) -> str:
        return str(payment.order)

    @admin.display(description=_("no review needed"), boolean=True, ordering="needs_review")
    def review(self, payment: Payment) -> bool:
        return not payment.needs_review

    @admin.display(description=_("the kiosk shows"))
    def kiosk_status(self, payment: Payment) -> str:
        return KIOSK_STATUS_LABELS.get(status := selectors.kiosk_status(payment), status)

    @admin.display(description=_("review reason"))
    def review_notes(self, payment: Payment):
        """Why the system flagged it, one reason a line, written in the restaurant's language (reasons noted before
        it did so are English, shown as stored)."""
        if not payment.review_reason:
            return "-"
        return linebreaksbr(payment.review_reason)

    @admin.display(description=_("terminal"))
    def terminal(self, payment: Payment) -> str:
        return payment.order.terminal.name

    @admin.display(description="CPF")
    def customer_cpf(self, payment: Payment) -> str:
        customer = payment.order.customer
        return mask_cpf(customer.cpf) if customer else "-"

    @admin.display(description=_("order"))
    def order_link(self, payment: Payment) -> str:
        url = reverse("admin:orders_order_change", args=[payment.order_id])
        order = payment.order
        return format_html(
            '<a href="{}">{}</a> ({})',
            url,
            order,
            gettext("%(status)s, total %(total)s")
            % {"status": order.get_status_display(), "total": _money(order.total)},
        )

    @admin.display(description=_("items"))
    def order_items(self, payment: Payment) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (i.quantity, i.product_name, _money(i.unit_price), _money(i.line_total), i.note)
                for i in payment.order.items.all()
            ),
        )
        headings = format_html_join(
            "",
            "<th>{}</th>",
            (
                (gettext(word),)
                for word in (
                    gettext_noop("qty"),
                    gettext_noop("item"),
                    gettext_noop("unit price"),
                    gettext_noop("total"),
                    gettext_noop("note"),
                )
            ),
        )
        return format_html("<table><tr>{}</tr>{}</table>", headings, rows)

    @admin.display(description=_("refunded (from the ledger)"))
    def refunded(self, payment: Payment) -> str:
        return _money(payment.refunded_amount())

    @admin.display(description=_("refunds waiting for Mercado Pago's confirmation"))
    def refund_pending(self, payment: Payment) -> str:
        return _money(selectors.refund_pending_amount(payment))

    @admin.display(description=_("still refundable"))
    def refundable(self, payment: Payment) -> str:
        return _money(selectors.refundable_amount(payment))

    def has_refund_permission(self, request) -> bool:
        return request.user.has_perm("payments.refund_payment")

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("payments.refund_payment")  # the same trust as giving money back

    def has_sync_permission(self, request) -> bool:
        # The page is read-only for everyone (ReadOnlyMixin); changing a payment by an action is a manager's.
        return request.user.has_perm("payments.change_payment")

    # --- actions ---------------------------------------------------------------------------------

    def _each(self, request, queryset, action: str, run, *, reason: str = ""):
        """Runs `run` on each payment and audits it as `action` (English, as the audit trail keeps it)."""
        done = 0
        for payment in queryset.order_by("pk"):
            before = snapshot(payment, AUDITED_PAYMENT_FIELDS)
            try:
                run(payment)
            except (DomainError, GatewayError) as exc:
                message = gettext("Payment %(payment)s: %(reason)s") % {
                    "payment": payment.pk,
                    "reason": getattr(exc, "detail", None) or exc,
                }
                self.message_user(request, message, messages.ERROR)
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
            message = ngettext("%(action)s: %(count)d payment.", "%(action)s: %(count)d payments.", done) % {
                "action": gettext(action),
                "count": done,
            }
            self.message_user(request, message, messages.SUCCESS)

    @admin.action(description=_("Sync with Mercado Pago"), permissions=["sync"])
    def sync_with_mercadopago(self, request, queryset):
        self._each(
            request, queryset, gettext_noop("Sync with Mercado Pago"), lambda p: review.payment_sync(payment_id=p.pk)
        )

    @admin.action(description=_("Approve and send to kitchen"), permissions=["review"])
    def approve_and_send_to_kitchen(self, request, queryset):
        actor = request.user.get_username()
        self._each(
            request,
            queryset,
            gettext_noop("Approve and send to kitchen"),
            lambda p: review.payment_review_approve(payment_id=p.pk, actor=actor),
        )

    @admin.action(description=_("Mark reviewed (with a comment)"), permissions=["review"])
    def mark_reviewed(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:payments_payment_review')}?ids={ids}")

    @admin.action(description=_("Refund"), permissions=["refund"])
    def refund(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, gettext("Refund one payment at a time."), messages.WARNING)
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
        # Through get_queryset: a kitchen or cashier login given the permission refunds only its store's payments.
        payment = self.get_queryset(request).select_related("order__store").filter(pk=object_id).first()
        if payment is None:
            raise Http404
        zone = zone_of(home_store(request.user) or payment.order.store)
        return render_in_zone(zone, self._refund, request, payment)

    def _refund(self, request, payment: Payment):
        refundable = selectors.refundable_amount(payment)
        form = RefundForm(request.POST or None, payment=payment, refundable=refundable)
        if request.method == "POST" and form.is_valid():
            before = snapshot(payment, AUDITED_PAYMENT_FIELDS)
            reason = form.cleaned_data["reason"]
            request_key = refunds.request_key_for(caller=f"admin-{request.user.pk}", key=form.cleaned_data["form_key"])
            if Refund.objects.filter(request_key=request_key).exists():
                # The same form sent again (a double click, a re-sent page): that refund is already on its way.
                self.message_user(request, gettext("This refund was already requested; see it below."), messages.INFO)
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
                form.add_error(None, gettext("Mercado Pago refused the refund: %(reason)s") % {"reason": exc.message})
            except GatewayError as exc:
                payment.refresh_from_db()
                audit(
                    user=request.user,
                    obj=payment,
                    action=gettext_noop("Refund requested (Mercado Pago unreachable)"),
                    reason=reason,
                    before=before,
                    after=snapshot(payment, AUDITED_PAYMENT_FIELDS),
                )
                self.message_user(
                    request,
                    gettext(
                        "Mercado Pago could not take the refund right now (%(reason)s). It stays requested and is "
                        "retried automatically (reconcile_payments); its amount is held meanwhile."
                    )
                    % {"reason": exc.message},
                    messages.WARNING,
                )
                return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))
            else:
                payment.refresh_from_db()
                audit(
                    user=request.user,
                    obj=payment,
                    action=gettext_noop("Refund"),
                    reason=reason,
                    before=before,
                    after={**snapshot(payment, AUDITED_PAYMENT_FIELDS), "refund": f"{refund.amount:.2f}"},
                )
                self.message_user(request, _refund_message(refund), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Refund payment %(payment)s") % {"payment": payment.pk},
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
        payments = list(self.get_queryset(request).filter(pk__in=ids).select_related("order__store"))
        if not payments:
            raise Http404
        zone = zone_of(home_store(request.user) or common_store(payment.order.store for payment in payments))
        return render_in_zone(zone, self._review, request, ids, payments)

    def _review(self, request, ids: list[int], payments: list[Payment]):
        form = ReviewForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            comment = form.cleaned_data["comment"]
            self._each(
                request,
                self.get_queryset(request).filter(pk__in=ids),
                gettext_noop("Mark reviewed"),
                lambda p: review.payment_review_resolve(
                    payment_id=p.pk, actor=request.user.get_username(), comment=comment
                ),
                reason=comment,
            )
            return HttpResponseRedirect(reverse("admin:payments_payment_changelist") + "?needs_review__exact=1")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Mark payments reviewed"),
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
class WebhookDeliveryAdmin(ReadOnlyMixin, StoreTimeZoneMixin, admin.ModelAdmin):
    store_lookup = "payment__order__store"
    list_display = [
        "id",
        "received_at",
        "topic_code",
        "action",
        "resource_id",
        "status",
        "signature_valid",
        "attempts",
        "payment",
    ]
    list_filter = ["status", code_filter("topic", _("topic")), "signature_valid", "signature_id_case"]
    date_hierarchy = "received_at"
    search_fields = ["=resource_id", "=request_id"]
    readonly_fields = [
        "received_at", "topic_code", "action", "resource_id", "request_id", "status", "attempts", "last_error",
        "signature", "signature_valid", "signature_error", "signature_id_case", "dedupe_key", "replay_key",
        "remote_addr", "query", "headers", "body_size", "body",
        "payment", "processed_at", "next_attempt_at",
    ]  # fmt: skip
    fields = readonly_fields
    actions = ["process_again"]
    topic_code = code_column("topic", _("topic"))

    def get_queryset(self, request):
        # A kitchen or cashier login given the permission sees its store's payments' notifications only.
        return in_staff_store(request.user, super().get_queryset(request), "payment__order__store")

    def has_process_again_permission(self, request) -> bool:
        return request.user.has_perm("payments.change_webhookdelivery")

    @admin.action(description=_("Process again (fetch from Mercado Pago and apply)"), permissions=["process_again"])
    def process_again(self, request, queryset):
        done = 0
        for delivery in queryset.filter(signature_valid=True):
            webhooks.delivery_process(delivery)
            audit(
                user=request.user,
                obj=delivery,
                action=gettext_noop("Process notification again"),
                after={"status": delivery.status},
            )
            done += 1
        skipped = queryset.exclude(signature_valid=True).count()
        message = ngettext(
            "Processed %(count)d notification again.", "Processed %(count)d notifications again.", done
        ) % {"count": done}
        self.message_user(request, message, messages.SUCCESS)
        if skipped:
            message = ngettext(
                "Skipped %(count)d not signed by Mercado Pago.",
                "Skipped %(count)d not signed by Mercado Pago.",
                skipped,
            ) % {"count": skipped}
            self.message_user(request, message, messages.WARNING)
