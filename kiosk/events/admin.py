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
from django.utils.translation import gettext, gettext_noop, ngettext
from django.utils.translation import gettext_lazy as _

from kiosk.admin import ReadOnlyMixin
from kiosk.audit import audit
from kiosk.events.delivery import send_again as send_deliveries_again
from kiosk.events.endpoints import endpoint_create, endpoint_delete, endpoint_rotate_secret, endpoint_update
from kiosk.events.models import DeliveryAttempt, Event, EventDelivery, WebhookEndpoint
from kiosk.events.services import EVENT_TYPES
from kiosk.events.validation import clean_endpoint_events, clean_endpoint_url
from kiosk.logging import mask_pii
from kiosk.store_time import StoreTimeZoneMixin
from orders.admin import in_staff_store

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
        label="URL", max_length=500, help_text=_("Where the events are POSTed: http(s) to a public address.")
    )
    events = EventTypesField(
        label=_("events"),
        error_messages={"required": _("Tick the event types to send, or all events (*).")},
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "events", "active", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(ALL_EVENTS, gettext("All events (*), including types added later"))]
        choices += [(name, f"{name}: {gettext(meaning)}") for name, meaning in EVENT_TYPES.items()]
        # A type stored earlier and no longer known stays visible (and is refused on save until unticked).
        stored = self.instance.events if self.instance.pk else []
        choices += [
            (name, gettext("%(type)s (unknown type)") % {"type": name})
            for name in stored
            if name != ALL_EVENTS and name not in EVENT_TYPES
        ]
        self.fields["events"].choices = choices

    def clean_url(self) -> str:
        return clean_endpoint_url(self.cleaned_data["url"])

    def clean_events(self) -> list[str]:
        return clean_endpoint_events(list(self.cleaned_data["events"]))


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(StoreTimeZoneMixin, admin.ModelAdmin):
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

    @admin.display(description=_("events"))
    def event_types(self, endpoint: WebhookEndpoint) -> str:
        return gettext("all (*)") if ALL_EVENTS in endpoint.events else ", ".join(endpoint.events)

    def _deliveries_link(self, endpoint: WebhookEndpoint, status: str, count: int):
        if not count:
            return 0
        url = reverse("admin:events_eventdelivery_changelist")
        return format_html(
            '<a href="{}?endpoint__id__exact={}&status__exact={}">{}</a>', url, endpoint.pk, status, count
        )

    @admin.display(description=_("pending deliveries"), ordering="pending_count")
    def pending(self, endpoint: WebhookEndpoint):
        return self._deliveries_link(endpoint, Status.PENDING, endpoint.pending_count)

    @admin.display(description=_("dead deliveries"), ordering="dead_count")
    def dead(self, endpoint: WebhookEndpoint):
        return self._deliveries_link(endpoint, Status.DEAD, endpoint.dead_count)

    @admin.display(description=_("signing secret"))
    def signing_secret(self, endpoint: WebhookEndpoint) -> str:
        return format_html(
            "<code>{}</code><div class='help'>{}</div>",
            endpoint.secret,
            gettext("The subscriber checks X-Kiosk-Signature with it. Rotate it with the list's action."),
        )

    @admin.action(description=_("Rotate signing secret"), permissions=["change"])
    def rotate_secret(self, request, queryset):
        done = 0
        for endpoint_id in queryset.order_by("pk").values_list("pk", flat=True):
            endpoint = endpoint_rotate_secret(endpoint_id=endpoint_id)
            # never the secret itself
            audit(user=request.user, obj=endpoint, action=gettext_noop("Rotate signing secret"))
            done += 1
        message = ngettext(
            "New signing secret for %(count)d endpoint. Events are signed with it from now on: copy it from the "
            "endpoint's page into the subscriber (until then it refuses them and they are retried).",
            "New signing secret for %(count)d endpoints. Events are signed with it from now on: copy it from the "
            "endpoint's page into the subscriber (until then it refuses them and they are retried).",
            done,
        ) % {"count": done}
        self.message_user(request, message, messages.SUCCESS)

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
        to_delete = [
            gettext("Webhook endpoint: %(endpoint)s (%(url)s)") % {"endpoint": endpoint, "url": endpoint.url}
            for endpoint in endpoints
        ]
        return to_delete, {name: count for name, count in counts.items() if count}, set(), []


# --- Events ---------------------------------------------------------------------------------------


class EventTypeFilter(admin.SimpleListFilter):
    title = _("type")
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
class EventAdmin(ReadOnlyMixin, StoreTimeZoneMixin, admin.ModelAdmin):
    store_lookup = "order__store"
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

    def get_queryset(self, request):
        # A kitchen or cashier login given the permission sees its store's only, as with orders and payments.
        return in_staff_store(request.user, super().get_queryset(request), "order__store")

    @admin.display(description=_("order"), ordering="order_id")
    def order_link(self, event: Event) -> str:
        return _order_link(event.order_id, event.order)

    @admin.display(description=_("aggregate"))
    def aggregate(self, event: Event) -> str:
        return f"{event.aggregate_type} {event.aggregate_id}"

    @admin.display(description=_("envelope (as sent; CPF masked here)"))
    def envelope_json(self, event: Event) -> str:
        # The subscriber gets the CPF of "CPF na nota"; the back office shows it masked, as everywhere else.
        return format_html("<pre>{}</pre>", mask_pii(json.dumps(event.envelope(), indent=2, ensure_ascii=False)))


# --- Deliveries -----------------------------------------------------------------------------------


class DeliveryAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = DeliveryAttempt
    verbose_name_plural = _("attempts (newest first)")
    fields = ["attempted_at", "status_code", "duration_ms", "error", "response_body"]
    readonly_fields = fields
    ordering = ["-attempted_at", "-id"]
    extra = 0


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyMixin, StoreTimeZoneMixin, admin.ModelAdmin):
    store_lookup = "event__order__store"
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

    def get_queryset(self, request):
        return in_staff_store(request.user, super().get_queryset(request), "event__order__store")

    @admin.display(description=_("event"), ordering="event__type")
    def event_type(self, delivery: EventDelivery) -> str:
        return delivery.event.type

    @admin.display(description=_("event"))
    def event_link(self, delivery: EventDelivery) -> str:
        url = reverse("admin:events_event_change", args=[delivery.event_id])
        event = delivery.event
        label = gettext("%(type)s #%(sequence)s of order %(order)s") % {
            "type": event.type,
            "sequence": event.sequence,
            "order": event.order_id,
        }
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description=_("order"), ordering="order_id")
    def order_link(self, delivery: EventDelivery) -> str:
        return _order_link(delivery.order_id, delivery.event.order)

    def has_send_again_permission(self, request) -> bool:
        # The deliveries' "change": the only change the back office makes to one is sending it again.
        return request.user.has_perm("events.change_eventdelivery")

    @admin.action(description=_("Send again (dead or delivered ones)"), permissions=["send_again"])
    def send_again(self, request, queryset):
        chosen = list(queryset.exclude(status=Status.PENDING).select_related("event", "endpoint"))
        skipped = queryset.filter(status=Status.PENDING).count()
        sent = send_deliveries_again([d.pk for d in chosen])
        for delivery in chosen:
            audit(
                user=request.user,
                obj=delivery,
                action=gettext_noop("Send delivery again"),
                before={"status": delivery.status, "attempts": delivery.attempts},
            )
        message = ngettext("Sending %(count)d delivery again.", "Sending %(count)d deliveries again.", sent) % {
            "count": sent
        }
        self.message_user(request, message, messages.SUCCESS)
        if skipped:
            message = ngettext(
                "Skipped %(count)d still pending: the worker is on it already.",
                "Skipped %(count)d still pending: the worker is on them already.",
                skipped,
            ) % {"count": skipped}
            self.message_user(request, message, messages.WARNING)
