"""Request parsing and response shapes for the webhook-endpoint API. The secret is shown only on creation
and rotation (WebhookEndpointSecretSerializer)."""

from rest_framework import serializers

from kiosk.api import StrictBooleanField, StrictCharField, StrictMixin
from kiosk.events.models import WebhookEndpoint
from kiosk.events.services import EVENT_TYPES
from kiosk.events.validation import MAX_URL_LENGTH

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


class WebhookEndpointWriteSerializer(StrictMixin, serializers.Serializer):
    """What a manager sends. Types and lengths here; the rules on URLs and event types in the service."""

    url = StrictCharField(
        max_length=MAX_URL_LENGTH,
        trim_whitespace=False,
        help_text="http(s) URL the events are POSTed to; private, loopback and link-local addresses are refused.",
    )
    events = serializers.ListField(
        child=StrictCharField(max_length=60), allow_empty=False, max_length=100, help_text=EVENTS_HELP
    )
    active = StrictBooleanField(required=False, default=True)
    description = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
