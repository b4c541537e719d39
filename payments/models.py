"""Payments, the payment ledger and the Mercado Pago notification inbox.

State changes live in `payments/services/`; the ledger (`PaymentEvent`) is append-only and explains every
payment: what was asked of Mercado Pago, what it answered, what we did about it.
"""

import secrets
from decimal import Decimal

from django.db import models
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from orders.models import MONEY, Order


def new_reference() -> str:
    """Our external_reference for Mercado Pago: <= 64 chars of [A-Za-z0-9_-], unguessable, and the
    X-Idempotency-Key of the QR creation, so a retried creation can never make a second QR order."""
    return f"kp-{secrets.token_hex(16)}"


class Payment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", pgettext_lazy("payment status", "Rejected")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", pgettext_lazy("payment status", "Cancelled")
        REFUNDED = "refunded", _("Refunded")
        PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
        CHARGED_BACK = "charged_back", _("Charged back")

    class Provider(models.TextChoices):
        MERCADOPAGO = "mercadopago", "Mercado Pago"
        COUNTER = "counter", _("At the counter")

    class Method(models.TextChoices):
        MERCADOPAGO_QR = "mercadopago_qr", _("Mercado Pago QR")
        CASH = "cash", _("Cash")
        CARD_OUTSIDE = "card_outside", _("Card (machine outside Mercado Pago)")

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments", verbose_name=_("order"))
    # Mercado Pago's QR, or money a cashier took at the counter (cash, a card machine of its own): those never
    # reach Mercado Pago, so nothing here asks Mercado Pago about them, refunds them or reconciles them.
    provider = models.CharField(_("provider"), max_length=20, choices=Provider.choices, default=Provider.MERCADOPAGO)
    method = models.CharField(_("method"), max_length=20, choices=Method.choices, default=Method.MERCADOPAGO_QR)
    reference = models.CharField(
        _("external reference"), max_length=64, unique=True, default=new_reference, editable=False
    )
    provider_order_id = models.CharField(_("Mercado Pago order id"), max_length=64, null=True, blank=True, unique=True)
    provider_payment_id = models.CharField(_("Mercado Pago payment id"), max_length=64, blank=True, db_index=True)
    # The Payments API's numeric id of the buyer's payment (the transaction's reference id): what a legacy
    # IPN (`?topic=payment&id=...`) names.
    provider_payment_reference = models.CharField(
        _("Mercado Pago Payments API id"), max_length=64, blank=True, db_index=True
    )
    amount = models.DecimalField(_("amount"), **MONEY)
    paid_amount = models.DecimalField(_("paid amount"), **MONEY, null=True, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    provider_status = models.CharField(
        _("Mercado Pago status"), max_length=40, blank=True, help_text=_("Mercado Pago's last order status.")
    )
    provider_status_detail = models.CharField(_("Mercado Pago status detail"), max_length=60, blank=True)
    qr_data = models.TextField(_("QR data"), blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    # Set only on the payment that paid the order: the database refuses a second one.
    settles = models.OneToOneField(
        Order,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="settled_by",
        editable=False,
        verbose_name=_("paid order"),
    )
    needs_review = models.BooleanField(_("needs review"), default=False, db_index=True)
    review_reason = models.TextField(_("review reason"), blank=True)
    last_error = models.TextField(
        _("last error"), blank=True, help_text=_("Why the last call to Mercado Pago failed, if it did.")
    )
    # An unsigned legacy IPN named this payment: reconcile_payments reads it from Mercado Pago next time.
    check_requested_at = models.DateTimeField(_("check requested at"), null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(provider="mercadopago", method="mercadopago_qr")
                | Q(provider="counter", method__in=["cash", "card_outside"]),
                name="payment_method_of_its_provider",
            ),
        ]
        permissions = [
            ("refund_payment", "Can refund payments through Mercado Pago"),
            ("view_sales_report", "Can see the sales report and export it"),
            ("record_counter_payment", "Can record a payment taken at the counter (cash, card outside Mercado Pago)"),
        ]

    def __str__(self) -> str:
        return gettext("Payment %(payment)s (%(status)s) for order %(order)s") % {
            "payment": self.pk,
            "status": self.get_status_display(),
            "order": self.order_id,
        }

    @property
    def qr_valid(self) -> bool:
        return bool(
            self.status == self.Status.PENDING and self.qr_data and self.expires_at and self.expires_at > timezone.now()
        )

    def refunded_amount(self) -> Decimal:
        """Derived from the ledger, never stored: the sum of refunds Mercado Pago confirmed."""
        total = self.events.filter(type=PaymentEvent.Type.REFUND_SUCCEEDED).aggregate(s=Sum("amount"))["s"]
        return total or Decimal("0.00")


class Refund(models.Model):
    """Money given back through Mercado Pago, matched to Mercado Pago's refund by its id.

    requested: we asked (or are about to); Mercado Pago's answer is not known yet, or it said "retry later"
               (`refund_in_progress`). Retried with the same idempotency key, so never made twice.
    pending:   Mercado Pago took it (we hold its refund id) and has not confirmed it yet.
    succeeded: Mercado Pago reports it processed: money given back.
    failed:    Mercado Pago refused or failed it: nothing was given back.
    A requested or pending refund holds its amount against the refundable remainder, so nobody can
    refund the same money twice; only a succeeded one counts as refunded.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        PENDING = "pending", _("Pending at Mercado Pago")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", pgettext_lazy("refund status", "Failed")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("payment"))
    amount = models.DecimalField(_("amount"), **MONEY)
    # Everything refundable, sent to Mercado Pago without a body; its retries must send the same request.
    full = models.BooleanField(_("full refund"), default=False)
    # What the caller asked for (empty: "everything refundable"): a retry of the same request must ask the same.
    requested_amount = models.DecimalField(_("requested amount"), **MONEY, null=True, blank=True, editable=False)
    reason = models.TextField(_("reason"))
    requested_by = models.CharField(_("requested by"), max_length=150)
    # Our X-Idempotency-Key towards Mercado Pago: the same on every attempt of this refund.
    idempotency_key = models.CharField(
        _("idempotency key"), max_length=64, unique=True, default=new_reference, editable=False
    )
    # The caller's Idempotency-Key (hashed with who sent it): a retry of the same request continues this row.
    request_key = models.CharField(_("request key"), max_length=64, null=True, blank=True, unique=True, editable=False)
    provider_refund_id = models.CharField(
        _("Mercado Pago refund id"), max_length=64, null=True, blank=True, unique=True
    )
    provider_status = models.CharField(
        _("Mercado Pago status"), max_length=30, blank=True, help_text=_("Mercado Pago's last status of it.")
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.REQUESTED, db_index=True
    )
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0, help_text=_("Calls made to Mercado Pago for it."))
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True, db_index=True)
    confirmed_at = models.DateTimeField(
        _("confirmed at"),
        null=True,
        blank=True,
        db_index=True,
        help_text=_("When Mercado Pago's confirmation was recorded."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True, db_index=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return gettext("Refund %(amount)s (%(status)s)") % {
            "amount": number_format(self.amount, 2),
            "status": self.get_status_display(),
        }


class PaymentEvent(models.Model):
    """Append-only ledger: one row per thing that happened to a payment, with the payload that caused it."""

    class Type(models.TextChoices):
        CREATED = "created", pgettext_lazy("payment event", "Created")
        COUNTER_PAYMENT = "counter_payment", _("Paid at the counter")
        QR_CREATED = "qr_created", _("QR created")
        QR_FAILED = "qr_failed", _("QR creation failed")
        NOTIFICATION_RECEIVED = "notification_received", _("Notification received")
        STATUS_CHANGED = "status_changed", _("Status changed")
        CANCEL_REQUESTED = "cancel_requested", _("Cancel requested")
        CANCEL_FAILED = "cancel_failed", _("Cancel failed")
        REFUND_REQUESTED = "refund_requested", _("Refund requested")
        REFUND_RETRY = "refund_retry", _("Refund to be retried")
        REFUND_ACCEPTED = "refund_accepted", _("Refund accepted, in progress")
        REFUND_SUCCEEDED = "refund_succeeded", _("Refund succeeded")
        REFUND_FAILED = "refund_failed", _("Refund failed")
        CHARGEBACK = "chargeback", _("Chargeback")
        REVIEW_FLAGGED = "review_flagged", _("Flagged for review")
        REVIEW_RESOLVED = "review_resolved", _("Review resolved")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="events", verbose_name=_("payment"))
    type = models.CharField(_("type"), max_length=30, choices=Type.choices)
    from_status = models.CharField(_("from status"), max_length=20, blank=True)
    to_status = models.CharField(_("to status"), max_length=20, blank=True)
    amount = models.DecimalField(_("amount"), **MONEY, null=True, blank=True)
    # Mercado Pago's id for what happened (a refund id...): with the payment and type, unique, so the same
    # fact reported twice is recorded once even when the two reports arrive at the same instant.
    provider_reference = models.CharField(_("Mercado Pago reference"), max_length=100, null=True, blank=True)
    message = models.TextField(_("message"), blank=True)
    payload = models.JSONField(_("payload"), null=True, blank=True)
    actor = models.CharField(_("actor"), max_length=150, blank=True, help_text=_("Who or what caused it."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("payment event")
        verbose_name_plural = _("payment events")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["payment", "type", "provider_reference"], name="payment_event_unique_provider_fact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} ({timezone.localtime(self.created_at):%Y-%m-%d %H:%M:%S})"


class WebhookDelivery(models.Model):
    """The inbox: every request to the notification URL, stored before anything else, even forged ones."""

    class Status(models.TextChoices):
        # stored, not applied yet (or applying failed: retried by a command)
        PENDING = "pending", pgettext_lazy("notification status", "Pending")
        PROCESSED = "processed", pgettext_lazy("notification status", "Processed")
        # genuine but about nothing of ours (or a duplicate)
        IGNORED = "ignored", pgettext_lazy("notification status", "Ignored")
        # bad or missing signature, or a body we cannot read
        REJECTED = "rejected", pgettext_lazy("notification status", "Rejected")

    class IdCase(models.TextChoices):
        """Which manifest the signature matched: Mercado Pago's SDKs keep data.id as received, its docs
        lower-case it. Recorded so production data shows which one Mercado Pago really signs."""

        AS_RECEIVED = "as_received", _("data.id as received")
        LOWERCASE = "lowercase", _("data.id lower-cased")

    topic = models.CharField(_("topic"), max_length=40, blank=True)
    action = models.CharField(_("action"), max_length=60, blank=True)
    resource_id = models.CharField(_("resource id"), max_length=100, blank=True, db_index=True)
    request_id = models.CharField("x-request-id", max_length=100, blank=True)
    # Mercado Pago's identifiers for this notification; set only once the signature checked out, so a
    # forged delivery can never take the place of the genuine one.
    dedupe_key = models.CharField(_("deduplication key"), max_length=255, null=True, blank=True, unique=True)
    # The signed identity of the delivery (data.id and x-request-id): a replay of it is a duplicate even
    # with another body (the body is not signed).
    replay_key = models.CharField(_("replay key"), max_length=255, null=True, blank=True, unique=True)
    signature = models.CharField(_("signature"), max_length=300, blank=True)
    signature_valid = models.BooleanField(_("signature valid"), null=True)
    signature_error = models.CharField(_("signature error"), max_length=200, blank=True)
    signature_id_case = models.CharField(_("signed data.id"), max_length=12, choices=IdCase.choices, blank=True)
    query = models.JSONField(_("query string"), default=dict)
    headers = models.JSONField(_("headers"), default=dict)
    body = models.TextField(_("body"), blank=True, help_text=_("As received; cut to a few KB for rejected deliveries."))
    body_size = models.PositiveIntegerField(
        _("body size"), default=0, help_text=_("Size of the body as received, in bytes.")
    )
    remote_addr = models.GenericIPAddressField(_("remote address"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    payment = models.ForeignKey(
        Payment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
        verbose_name=_("payment"),
    )
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("Mercado Pago notification")
        verbose_name_plural = _("Mercado Pago notifications")

        indexes = [models.Index(fields=["remote_addr", "received_at"], name="delivery_addr_received")]

    def __str__(self) -> str:
        return f"{self.resource_id or '?'} ({self.get_status_display()})"
