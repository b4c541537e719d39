"""The back office for outgoing webhooks: the endpoints managers subscribe, the events written, the deliveries.

Events and deliveries are read-only; a delivery moves only through "Send again" (kiosk.events.delivery). An
endpoint is checked by kiosk/events/validation.py and written by kiosk/events/endpoints.py, as in the REST API.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html

from kiosk.admin import ReadOnlyMixin
from kiosk.audit import audit
from kiosk.events.delivery import send_again as send_deliveries_again
from kiosk.events.endpoints import endpoint_create, endpoint_delete, endpoint_rotate_secret, endpoint_update
from kiosk.events.models import DeliveryAttempt, Event, EventDelivery, WebhookEndpoint
from kiosk.events.services import EVENT_TYPES
from kiosk.events.validation import clean_endpoint_events, clean_endpoint_url
from kiosk.logging import mask_pii

ALL_EVENTS = "*"
Status = EventDelivery.Status


def _order_link(order_id, label) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:orders_order_change", args=[order_id]), label)


# --- Endpoints ------------------------------------------------------------------------------------


class EventTypesField(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def validate(self, value):
        # Only "something ticked" here: which types exist is validation.py's to say, as for the API.
        forms.Field.validate(self, value)


class WebhookEndpointForm(forms.ModelForm):
    url = forms.CharField(
        label="URL", max_length=500, help_text="Where the events are POSTed: http(s) to a public address."
    )
    events = EventTypesField(
        label="events",
        error_messages={"required": "Tick the event types to send, or all events (*)."},
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "events", "active", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(ALL_EVENTS, "All events (*), including types added later")]
        choices += [(name, f"{name}: {meaning}") for name, meaning in EVENT_TYPES.items()]
        # A type stored earlier and no longer known stays visible (and is refused on save until unticked).
        stored = self.instance.events if self.instance.pk else []
        choices += [
            (name, f"{name} (unknown type)") for name in stored if name != ALL_EVENTS and name not in EVENT_TYPES
        ]
        self.fields["events"].choices = choices

    def clean_url(self) -> str:
        return clean_endpoint_url(self.cleaned_data["url"])

    def clean_events(self) -> list[str]:
        return clean_endpoint_events(list(self.cleaned_data["events"]))


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["__str__", "url", "event_types", "active", "pending", "dead", "created_at"]
    list_display_links = ["__str__", "url"]
    list_filter = ["active"]
    search_fields = ["description", "url"]
    readonly_fields = ["signing_secret", "created_at", "updated_at"]
    actions = ["rotate_secret"]

    def get_queryset(self, request):
        # Two counts per endpoint in the same query: a handful of endpoints, indexed by endpoint.
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending_count=Count("deliveries", filter=Q(deliveries__status=Status.PENDING)),
                dead_count=Count("deliveries", filter=Q(deliveries__status=Status.DEAD)),
            )
        )

    def get_fields(self, request, obj=None):
        fields = ["url", "events", "active", "description"]
        return [*fields, "signing_secret", "created_at", "updated_at"] if obj else fields

    @admin.display(description="events")
    def event_types(self, endpoint: WebhookEndpoint) -> str:
        return "all (*)" if ALL_EVENTS in endpoint.events else ", ".join(endpoint.events)

    def _deliveries_link(self, endpoint: WebhookEndpoint, status: str, count: int):
        if not count:
            return 0
        url = reverse("admin:events_eventdelivery_changelist")
        return format_html(
            '<a href="{}?endpoint__id__exact={}&status__exact={}">{}</a>', url, endpoint.pk, status, count
        )

    @admin.display(description="pending", ordering="pending_count")
    def pending(self, endpoint: WebhookEndpoint):
        return self._deliveries_link(endpoint, Status.PENDING, endpoint.pending_count)

    @admin.display(description="dead", ordering="dead_count")
    def dead(self, endpoint: WebhookEndpoint):
        return self._deliveries_link(endpoint, Status.DEAD, endpoint.dead_count)

    @admin.display(description="signing secret")
    def signing_secret(self, endpoint: WebhookEndpoint) -> str:
        return format_html(
            "<code>{}</code><div class='help'>The subscriber checks X-Kiosk-Signature with it. "
            "Rotate it with the list's action.</div>",
            endpoint.secret,
        )

    @admin.action(description="Rotate signing secret", permissions=["change"])
    def rotate_secret(self, request, queryset):
        done = 0
        for endpoint_id in queryset.order_by("pk").values_list("pk", flat=True):
            endpoint = endpoint_rotate_secret(endpoint_id=endpoint_id)
            audit(user=request.user, obj=endpoint, action="Rotate signing secret")  # never the secret itself
            done += 1
        self.message_user(
            request,
            f"New signing secret for {done} endpoint(s). Events are signed with it from now on: copy it from the "
            "endpoint's page into the subscriber (until then it refuses them and they are retried).",
            messages.SUCCESS,
        )

    # --- writes go through kiosk/events/endpoints.py, as the API's do ---------------------------

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in ("url", "events", "active", "description")}
        saved = endpoint_update(endpoint_id=obj.pk, **fields) if change else endpoint_create(**fields)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        endpoint_delete(endpoint_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for endpoint_id in queryset.order_by("pk").values_list("pk", flat=True):
            endpoint_delete(endpoint_id=endpoint_id)

    def get_deleted_objects(self, objs, request):
        """What the confirmation page shows: the endpoints, and their deliveries and attempts counted, not
        listed (there may be thousands). They go with the endpoint, as through the API."""
        endpoints = list(objs)
        ids = [endpoint.pk for endpoint in endpoints]
        counts = {
            WebhookEndpoint._meta.verbose_name_plural: len(endpoints),
            EventDelivery._meta.verbose_name_plural: EventDelivery.objects.filter(endpoint_id__in=ids).count(),
            DeliveryAttempt._meta.verbose_name_plural: DeliveryAttempt.objects.filter(
                delivery__endpoint_id__in=ids
            ).count(),
        }
        to_delete = [f"Webhook endpoint: {endpoint} ({endpoint.url})" for endpoint in endpoints]
        return to_delete, {name: count for name, count in counts.items() if count}, set(), []


# --- Events ---------------------------------------------------------------------------------------


class EventTypeFilter(admin.SimpleListFilter):
    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [(name, name) for name in EVENT_TYPES]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


class EventDeliveryInline(ReadOnlyMixin, admin.TabularInline):
    model = EventDelivery
    fields = ["endpoint", "status", "attempts", "last_status_code", "last_error", "next_attempt_at", "delivered_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("endpoint", "event")


@admin.register(Event)
class EventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["type", "order_link", "sequence", "aggregate", "occurred_at", "correlation_id"]
    list_filter = [EventTypeFilter]
    list_select_related = ["order"]
    list_per_page = 100
    date_hierarchy = "occurred_at"
    search_fields = ["=event_id", "=order__id", "=correlation_id"]
    fields = [
        "event_id", "type", "occurred_at", "order_link", "sequence", "aggregate", "correlation_id", "causation_id",
        "version", "envelope_json",
    ]  # fmt: skip
    readonly_fields = fields
    inlines = [EventDeliveryInline]

    @admin.display(description="order", ordering="order_id")
    def order_link(self, event: Event) -> str:
        return _order_link(event.order_id, event.order)

    @admin.display(description="aggregate")
    def aggregate(self, event: Event) -> str:
        return f"{event.aggregate_type} {event.aggregate_id}"

    @admin.display(description="envelope (as sent; CPF masked here)")
    def envelope_json(self, event: Event) -> str:
        # The subscriber gets the CPF of "CPF na nota"; the back office shows it masked, as everywhere else.
        return format_html("<pre>{}</pre>", mask_pii(json.dumps(event.envelope(), indent=2, ensure_ascii=False)))


# --- Deliveries -----------------------------------------------------------------------------------


class DeliveryAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = DeliveryAttempt
    verbose_name_plural = "attempts (newest first)"
    fields = ["attempted_at", "status_code", "duration_ms", "error", "response_body"]
    readonly_fields = fields
    ordering = ["-attempted_at", "-id"]
    extra = 0


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id", "event_type", "endpoint", "order_link", "sequence", "status", "attempts", "last_status_code",
        "last_error", "next_attempt_at", "delivered_at",
    ]  # fmt: skip
    list_filter = ["status", "endpoint"]
    list_select_related = ["event", "event__order", "endpoint"]
    list_per_page = 100
    date_hierarchy = "created_at"
    search_fields = ["=delivery_id", "=event__event_id", "=order_id"]
    fields = [
        "delivery_id", "event_link", "endpoint", "order_link", "sequence", "status", "attempts", "next_attempt_at",
        "locked_until", "last_status_code", "last_error", "created_at", "delivered_at",
    ]  # fmt: skip
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]
    actions = ["send_again"]

    @admin.display(description="event", ordering="event__type")
    def event_type(self, delivery: EventDelivery) -> str:
        return delivery.event.type

    @admin.display(description="event")
    def event_link(self, delivery: EventDelivery) -> str:
        url = reverse("admin:events_event_change", args=[delivery.event_id])
        return format_html('<a href="{}">{}</a>', url, delivery.event)

    @admin.display(description="order", ordering="order_id")
    def order_link(self, delivery: EventDelivery) -> str:
        return _order_link(delivery.order_id, delivery.event.order)

    def has_send_again_permission(self, request) -> bool:
        # The deliveries' "change": the only change the back office makes to one is sending it again.
        return request.user.has_perm("events.change_eventdelivery")

    @admin.action(description="Send again (dead or delivered ones)", permissions=["send_again"])
    def send_again(self, request, queryset):
        chosen = list(queryset.exclude(status=Status.PENDING).select_related("event", "endpoint"))
        skipped = queryset.filter(status=Status.PENDING).count()
        sent = send_deliveries_again([d.pk for d in chosen])
        for delivery in chosen:
            audit(
                user=request.user,
                obj=delivery,
                action="Send delivery again",
                before={"status": delivery.status, "attempts": delivery.attempts},
            )
        self.message_user(request, f"Sending {sent} delivery(ies) again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Skipped {skipped} still pending: the worker is on them already.", messages.WARNING
            )
