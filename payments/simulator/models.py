"""State of the Mercado Pago simulator: its orders, their payment transactions, refunds, chargebacks,
idempotency keys and the queue of notifications it still has to send.

Everything lives in the database (not in process memory) so that several gunicorn workers, the pay page
opened on a phone and the in-process SDK client all see the same Mercado Pago. These tables belong to the
"Mercado Pago side": our payments domain must never read them, only talk to them through the API.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class SimOrder(models.Model):
    """An Orders API order of type "qr" (`POST /v1/orders`)."""

    id = models.CharField(primary_key=True, max_length=32)  # "ORD" + 26-character ULID
    user_id = models.CharField(_("collector id"), max_length=32)  # the collector (seller) the access token belongs to
    application_id = models.CharField(_("application id"), max_length=32)
    external_reference = models.CharField(_("external reference"), max_length=64, db_index=True)
    description = models.CharField(_("description"), max_length=150, blank=True)
    total_amount = models.DecimalField(_("total amount"), max_digits=12, decimal_places=2)
    external_pos_id = models.CharField(_("external POS id"), max_length=64)
    mode = models.CharField(_("QR mode"), max_length=8)  # config.qr.mode: static | dynamic | hybrid
    expiration_time = models.CharField(
        _("expiration time"), max_length=40
    )  # the ISO-8601 duration as sent (or the default)
    expires_at = models.DateTimeField(_("expires at"))
    status = models.CharField(_("status"), max_length=24)
    status_detail = models.CharField(_("status detail"), max_length=32)
    items = models.JSONField(_("items"), default=list, blank=True)
    # Optional request parts echoed back as sent (discounts, integration_data, taxes).
    extra = models.JSONField(_("extra"), default=dict, blank=True)
    # Mercado Pago sends Orders notifications to the URL configured in the application's panel; the
    # simulator takes settings.MERCADOPAGO_NOTIFICATION_URL at creation, as if the panel said so.
    notification_url = models.CharField(_("notification URL"), max_length=500, blank=True)
    version = models.PositiveIntegerField(_("version"), default=1)  # bumped on every change; sent as data.version
    created_date = models.DateTimeField(_("created at"))
    last_updated_date = models.DateTimeField(_("last updated at"))

    class Meta:
        verbose_name = _("simulated order")
        verbose_name_plural = _("simulated orders")
        ordering = ["-created_date"]

    def __str__(self) -> str:
        return f"{self.id} {self.status}/{self.status_detail} {self.total_amount}"


class SimPayment(models.Model):
    """The payment transaction of an order (`transactions.payments[]`; exactly one for type "qr")."""

    id = models.CharField(primary_key=True, max_length=32)  # "PAY" + 26-character ULID
    order = models.ForeignKey(SimOrder, on_delete=models.CASCADE, verbose_name=_("order"), related_name="payments")
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    paid_amount = models.DecimalField(_("paid amount"), max_digits=12, decimal_places=2, null=True, blank=True)
    status = models.CharField(_("status"), max_length=24)
    status_detail = models.CharField(_("status detail"), max_length=32)
    # The numeric Payments API id (`reference_id` in the order, `reference.id` in notifications), given
    # once the buyer actually tried to pay; GET /v1/payments/{reference_id} answers for it.
    reference_id = models.BigIntegerField(_("Payments API id"), null=True, blank=True, unique=True)
    payment_method = models.JSONField(_("payment method"), default=dict, blank=True)
    date_created = models.DateTimeField(_("paid or tried at"), null=True, blank=True)  # when the buyer paid or tried to
    date_approved = models.DateTimeField(_("approved at"), null=True, blank=True)
    date_last_updated = models.DateTimeField(_("last updated at"), null=True, blank=True)

    class Meta:
        verbose_name = _("simulated payment")
        verbose_name_plural = _("simulated payments")

    def __str__(self) -> str:
        return f"{self.id} {self.status}/{self.status_detail}"


class SimRefund(models.Model):
    """A refund of a payment transaction (`transactions.refunds[]`).

    Mercado Pago answers a refund request with the refund "processing" and settles it later; the simulator
    settles it at `confirm_at` (engine.confirm_refunds, run by the pump or lazily when the order is read),
    with `outcome`: "processed" (money given back) or "failed" (the amount is refundable again).
    """

    id = models.CharField(primary_key=True, max_length=32)  # "REF" + 26-character ULID
    payment = models.ForeignKey(SimPayment, on_delete=models.CASCADE, verbose_name=_("payment"), related_name="refunds")
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    status = models.CharField(_("status"), max_length=24)  # processing -> processed | failed
    reference_id = models.BigIntegerField(_("Payments API id"), unique=True)  # the Payments API refund id
    created_date = models.DateTimeField(_("created at"))
    confirm_at = models.DateTimeField(
        _("confirms at"), db_index=True
    )  # when Mercado Pago settles it (while processing)
    outcome = models.CharField(_("outcome"), max_length=12, default="processed")  # what settling it makes it

    class Meta:
        verbose_name = _("simulated refund")
        verbose_name_plural = _("simulated refunds")
        ordering = ["created_date", "id"]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.status}"


class SimChargeback(models.Model):
    """A chargeback of a payment transaction (`transactions.chargebacks[]` in the Orders API: id,
    transaction_id, case_id, status "opened" | "closed", references). It leaves the order's own status alone."""

    id = models.CharField(primary_key=True, max_length=32)  # "CHB" + 26-character ULID
    payment = models.ForeignKey(
        SimPayment, on_delete=models.CASCADE, verbose_name=_("payment"), related_name="chargebacks"
    )
    case_id = models.CharField(_("case id"), max_length=32)  # the dispute case (numeric, as a string)
    status = models.CharField(_("status"), max_length=12, default="opened")  # opened | closed
    references = models.JSONField(_("references"), default=list, blank=True)  # list of strings
    created_date = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("simulated chargeback")
        verbose_name_plural = _("simulated chargebacks")
        ordering = ["created_date", "id"]

    def __str__(self) -> str:
        return f"{self.id} {self.status}"


class SimNotification(models.Model):
    """One delivery of a notification (webhook), queued when the event happened and sent when due.

    Each duplicate copy Mercado Pago sends is a row of its own, with its own x-request-id; the retries of one
    delivery keep it. `body` is the JSON text as it will be sent: a snapshot of the resource at the event.
    While "sending", `due_at` is the end of the sender's lease: past it, a sender that died is taken over.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", pgettext_lazy("simulated notification", "Queued")
        SENDING = "sending", pgettext_lazy("simulated notification", "Sending")
        SENT = "sent", pgettext_lazy("simulated notification", "Sent")
        FAILED = "failed", pgettext_lazy("simulated notification", "Failed")

    url = models.CharField("URL", max_length=1000)  # the notification URL with ?data.id=...&type=... appended
    topic = models.CharField(_("topic"), max_length=16)  # "order" or "payment" (the `type` in the query string)
    action = models.CharField(_("action"), max_length=32)  # order.processed, payment.updated... (also in the body)
    data_id = models.CharField("data.id", max_length=64)  # the `data.id` of the query string, exactly as sent
    body = models.TextField(_("body"))
    signature_ts = models.CharField(
        _("signature timestamp unit"), max_length=2, default="ms"
    )  # unit of x-signature's ts: "ms" or "s"
    request_id = models.CharField("x-request-id", max_length=36)  # x-request-id (uuid4)
    due_at = models.DateTimeField(_("due at"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("simulated notification")
        verbose_name_plural = _("simulated notifications")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "due_at"], name="mp_sim_notification_due")]

    def __str__(self) -> str:
        return f"{self.action} {self.data_id} {self.status}"


class SimIdempotencyKey(models.Model):
    """An `X-Idempotency-Key` already used by a collector, with the request it was used for and the answer."""

    user_id = models.CharField(_("collector id"), max_length=32)
    key = models.CharField(_("key"), max_length=128)
    fingerprint = models.CharField(_("fingerprint"), max_length=64)  # sha256 of method, path and canonical body
    order = models.ForeignKey(SimOrder, null=True, blank=True, on_delete=models.CASCADE, verbose_name=_("order"))
    response_status = models.PositiveSmallIntegerField(_("response status"))
    response_body = models.JSONField(_("response body"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("simulated idempotency key")
        verbose_name_plural = _("simulated idempotency keys")
        constraints = [models.UniqueConstraint(fields=["user_id", "key"], name="mp_sim_idempotency_unique")]

    def __str__(self) -> str:
        return self.key
