"""Domain events and their delivery to subscribers (outgoing webhooks).

An Event is written by a service function in the same transaction as the change it describes (see
kiosk/events/services.py). For every active endpoint that wants its type, an EventDelivery is written beside
it, and a task to send it: committed together, or not at all.
"""

import secrets
import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

ENVELOPE_VERSION = 1


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


class Event(models.Model):
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(_("type"), max_length=60, db_index=True)
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)
    aggregate_type = models.CharField(_("aggregate type"), max_length=20)  # "order" or "payment"
    aggregate_id = models.CharField(_("aggregate id"), max_length=64)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="events", verbose_name=_("order"))
    sequence = models.PositiveIntegerField(_("sequence"), help_text=_("Per order, increasing from 1 with no gaps."))
    correlation_id = models.CharField(_("correlation id"), max_length=100, blank=True)
    causation_id = models.CharField(_("causation id"), max_length=100, blank=True)
    version = models.PositiveSmallIntegerField(_("version"), default=ENVELOPE_VERSION)
    data = models.JSONField(_("data"))

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["order_id", "sequence"]
        constraints = [models.UniqueConstraint(fields=["order", "sequence"], name="event_sequence_unique_per_order")]

    def __str__(self) -> str:
        return gettext("%(type)s #%(sequence)s of order %(order)s") % {
            "type": self.type,
            "sequence": self.sequence,
            "order": self.order_id,
        }

    def envelope(self) -> dict:
        return {
            "event_id": str(self.event_id),
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
            "aggregate": {"type": self.aggregate_type, "id": self.aggregate_id},
            "sequence": self.sequence,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "version": self.version,
            "data": self.data,
        }


class WebhookEndpoint(models.Model):
    url = models.URLField("URL", max_length=500)
    events = models.JSONField(_("events"), default=list, help_text=_('Event types to send, or ["*"] for all.'))
    active = models.BooleanField(_("active"), default=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    secret = models.CharField(_("signing secret"), max_length=100, default=new_secret, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.description or self.url

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class EventDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("delivery status", "Pending")
        DELIVERED = "delivered", pgettext_lazy("delivery status", "Delivered")
        DEAD = "dead", pgettext_lazy("delivery status", "Dead (gave up)")

    delivery_id = models.UUIDField(_("delivery id"), default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("event"))
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("endpoint")
    )
    # Copied from the event: what keeps one order's events in sequence for one endpoint.
    order_id = models.UUIDField(_("order id"))
    sequence = models.PositiveIntegerField(_("sequence"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    locked_until = models.DateTimeField(
        _("locked until"), null=True, blank=True, help_text=_("Being sent by a worker until then.")
    )
    last_status_code = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        verbose_name = _("event delivery")
        verbose_name_plural = _("event deliveries")
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="one_delivery_per_event_endpoint")]
        indexes = [
            models.Index(fields=["endpoint", "order_id", "sequence"], name="delivery_order_sequence"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} -> {self.endpoint} ({self.get_status_display()})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(
        EventDelivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name=_("delivery")
    )
    attempted_at = models.DateTimeField(_("attempted at"), default=timezone.now)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)
    response_body = models.CharField(_("response body"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["-attempted_at"]

    def __str__(self) -> str:
        return f"{self.status_code or self.error} ({self.duration_ms} ms)"
