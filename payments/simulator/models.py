"""State of the Mercado Pago simulator: its orders, their payment transactions, refunds, chargebacks,
idempotency keys and the queue of notifications it still has to send.

Everything lives in the database (not in process memory) so that several gunicorn workers, the pay page
opened on a phone and the in-process SDK client all see the same Mercado Pago. These tables belong to the
"Mercado Pago side": our payments domain must never read them, only talk to them through the API.
"""

from django.db import models


class SimOrder(models.Model):
    """An Orders API order of type "qr" (`POST /v1/orders`)."""

    id = models.CharField(primary_key=True, max_length=32)  # "ORD" + 26-character ULID
    user_id = models.CharField(max_length=32)  # the collector (seller) the access token belongs to
    application_id = models.CharField(max_length=32)
    external_reference = models.CharField(max_length=64, db_index=True)
    description = models.CharField(max_length=150, blank=True)
    total_amount = models.DecimalField(max_digits=12, decimal_places=2)
    external_pos_id = models.CharField(max_length=64)
    mode = models.CharField(max_length=8)  # config.qr.mode: static | dynamic | hybrid
    expiration_time = models.CharField(max_length=40)  # the ISO-8601 duration as sent (or the default)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=24)
    status_detail = models.CharField(max_length=32)
    items = models.JSONField(default=list, blank=True)
    # Optional request parts echoed back as sent (discounts, integration_data, taxes).
    extra = models.JSONField(default=dict, blank=True)
    # Mercado Pago sends Orders notifications to the URL configured in the application's panel; the
    # simulator takes settings.MERCADOPAGO_NOTIFICATION_URL at creation, as if the panel said so.
    notification_url = models.CharField(max_length=500, blank=True)
    version = models.PositiveIntegerField(default=1)  # bumped on every change; sent as data.version
    created_date = models.DateTimeField()
    last_updated_date = models.DateTimeField()

    class Meta:
        verbose_name = "simulated order"
        ordering = ["-created_date"]

    def __str__(self) -> str:
        return f"{self.id} {self.status}/{self.status_detail} {self.total_amount}"


class SimPayment(models.Model):
    """The payment transaction of an order (`transactions.payments[]`; exactly one for type "qr")."""

    id = models.CharField(primary_key=True, max_length=32)  # "PAY" + 26-character ULID
    order = models.ForeignKey(SimOrder, on_delete=models.CASCADE, related_name="payments")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    paid_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    status = models.CharField(max_length=24)
    status_detail = models.CharField(max_length=32)
    # The numeric Payments API id (`reference_id` in the order, `reference.id` in notifications), given
    # once the buyer actually tried to pay; GET /v1/payments/{reference_id} answers for it.
    reference_id = models.BigIntegerField(null=True, blank=True, unique=True)
    payment_method = models.JSONField(default=dict, blank=True)
    date_created = models.DateTimeField(null=True, blank=True)  # when the buyer paid or tried to
    date_approved = models.DateTimeField(null=True, blank=True)
    date_last_updated = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "simulated payment"

    def __str__(self) -> str:
        return f"{self.id} {self.status}/{self.status_detail}"


class SimRefund(models.Model):
    """A refund of a payment transaction (`transactions.refunds[]`).

    Mercado Pago answers a refund request with the refund "processing" and settles it later; the simulator
    settles it at `confirm_at` (engine.confirm_refunds, run by the pump or lazily when the order is read),
    with `outcome`: "processed" (money given back) or "failed" (the amount is refundable again).
    """

    id = models.CharField(primary_key=True, max_length=32)  # "REF" + 26-character ULID
    payment = models.ForeignKey(SimPayment, on_delete=models.CASCADE, related_name="refunds")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=24)  # processing -> processed | failed
    reference_id = models.BigIntegerField(unique=True)  # the Payments API refund id
    created_date = models.DateTimeField()
    confirm_at = models.DateTimeField(db_index=True)  # when Mercado Pago settles it (while processing)
    outcome = models.CharField(max_length=12, default="processed")  # what settling it makes it

    class Meta:
        verbose_name = "simulated refund"
        ordering = ["created_date", "id"]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.status}"


class SimChargeback(models.Model):
    """A chargeback of a payment transaction (`transactions.chargebacks[]` in the Orders API: id,
    transaction_id, case_id, status "opened" | "closed", references). It leaves the order's own status alone."""

    id = models.CharField(primary_key=True, max_length=32)  # "CHB" + 26-character ULID
    payment = models.ForeignKey(SimPayment, on_delete=models.CASCADE, related_name="chargebacks")
    case_id = models.CharField(max_length=32)  # the dispute case (numeric, as a string)
    status = models.CharField(max_length=12, default="opened")  # opened | closed
    references = models.JSONField(default=list, blank=True)  # list of strings
    created_date = models.DateTimeField()

    class Meta:
        verbose_name = "simulated chargeback"
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
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    url = models.CharField(max_length=1000)  # the notification URL with ?data.id=...&type=... appended
    topic = models.CharField(max_length=16)  # "order" or "payment" (the `type` in the query string)
    action = models.CharField(max_length=32)  # order.processed, payment.updated... (also in the body)
    data_id = models.CharField(max_length=64)  # the `data.id` of the query string, exactly as sent
    body = models.TextField()
    signature_ts = models.CharField(max_length=2, default="ms")  # unit of x-signature's ts: "ms" or "s"
    request_id = models.CharField(max_length=36)  # x-request-id (uuid4)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "simulated notification"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "due_at"], name="mp_sim_notification_due")]

    def __str__(self) -> str:
        return f"{self.action} {self.data_id} {self.status}"


class SimIdempotencyKey(models.Model):
    """An `X-Idempotency-Key` already used by a collector, with the request it was used for and the answer."""

    user_id = models.CharField(max_length=32)
    key = models.CharField(max_length=128)
    fingerprint = models.CharField(max_length=64)  # sha256 of method, path and canonical body
    order = models.ForeignKey(SimOrder, null=True, blank=True, on_delete=models.CASCADE)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "simulated idempotency key"
        constraints = [models.UniqueConstraint(fields=["user_id", "key"], name="mp_sim_idempotency_unique")]

    def __str__(self) -> str:
        return self.key
