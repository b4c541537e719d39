"""Request parsing and response shapes for the webhook-endpoint API. The secret is shown only on creation
and rotation (WebhookEndpointSecretSerializer)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kiosk.api import StrictBooleanField, StrictCharField, StrictMixin
from kiosk.events.models import WebhookEndpoint
from kiosk.events.services import EVENT_TYPES
from kiosk.events.validation import MAX_URL_LENGTH
from kiosk.openapi import url_schema

EVENTS_HELP = f'Event types to send, or ["*"] for all. Known types: {", ".join(EVENT_TYPES)}.'


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.CharField(), help_text=EVENTS_HELP)

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "active", "description", "created_at", "updated_at"]


class WebhookEndpointSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        help_text="Signs every delivery (X-Kiosk-Signature). Shown only now: store it where the subscriber can read it."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


@extend_schema_field(url_schema(blank=False, max_length=MAX_URL_LENGTH))
class SubscriberURLField(StrictCharField):
    pass


@extend_schema_field(
    {
        "anyOf": [
            {"type": "array", "items": {"enum": list(EVENT_TYPES)}, "minItems": 1, "maxItems": 100},
            {"type": "array", "items": {"enum": ["*"]}, "minItems": 1, "maxItems": 100},  # repeats are dropped
        ]
    }
)
class EventTypesField(serializers.ListField):
    pass


class WebhookEndpointWriteSerializer(StrictMixin, serializers.Serializer):
    """What a manager sends. Types and lengths here; the rules on URLs and event types in the service."""

    url = SubscriberURLField(
        max_length=MAX_URL_LENGTH,
        trim_whitespace=False,
        help_text="http(s) URL the events are POSTed to; its host must resolve to public addresses only "
        "(private, loopback and link-local ones are refused).",
    )
    events = EventTypesField(
        child=StrictCharField(max_length=60), allow_empty=False, max_length=100, help_text=EVENTS_HELP
    )
    active = StrictBooleanField(required=False, default=True)
    description = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
