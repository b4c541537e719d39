"""State of the Mercado Pago simulator: its orders, their payment transactions, refunds and idempotency keys.

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
    """A refund of a payment transaction (`transactions.refunds[]`)."""

    id = models.CharField(primary_key=True, max_length=32)  # "REF" + 26-character ULID
    payment = models.ForeignKey(SimPayment, on_delete=models.CASCADE, related_name="refunds")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=24)  # processing -> processed
    reference_id = models.BigIntegerField(unique=True)  # the Payments API refund id
    created_date = models.DateTimeField()

    class Meta:
        verbose_name = "simulated refund"
        ordering = ["created_date", "id"]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.status}"


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
