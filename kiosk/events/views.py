"""REST endpoints for managers to subscribe systems to our events (outgoing webhooks). Thin: parse, call one
service in kiosk/events/endpoints.py, shape."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from kiosk.api import OPTIONAL_IDEMPOTENCY_HEADER, PROBLEM
from kiosk.events import endpoints
from kiosk.events.serializers import (
    WebhookEndpointSecretSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWriteSerializer,
)
from kiosk.idempotency import idempotent
from kiosk.roles import MANAGER, allow

DENIED = {401: PROBLEM, 403: PROBLEM}


def _location(endpoint) -> str:
    return f"/api/v1/webhook-endpoints/{endpoint.pk}/"


class WebhookEndpointListView(APIView):
    permission_classes = [allow(MANAGER)]

    @extend_schema(responses={200: WebhookEndpointSerializer(many=True), **DENIED})
    def get(self, request):
        """Every subscription, oldest first. Secrets are never listed."""
        return Response(WebhookEndpointSerializer(endpoints.endpoints_list(), many=True).data)

    @extend_schema(
        parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointSecretSerializer, 400: PROBLEM, **DENIED},
    )
    @idempotent(required=False)
    def post(self, request):
        """Subscribes a URL to event types (or ["*"]). The answer carries the signing `secret`, the only
        time it is shown: GET never returns it (rotate-secret makes a new one)."""
        serializer = WebhookEndpointWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = endpoints.endpoint_create(**serializer.validated_data)
        return Response(
            WebhookEndpointSecretSerializer(endpoint).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": _location(endpoint)},
        )


class WebhookEndpointDetailView(APIView):
    permission_classes = [allow(MANAGER)]

    @extend_schema(responses={200: WebhookEndpointSerializer, 404: PROBLEM, **DENIED})
    def get(self, request, endpoint_id):
        return Response(WebhookEndpointSerializer(endpoints.endpoint_get(endpoint_id=endpoint_id)).data)

    @extend_schema(
        request=WebhookEndpointWriteSerializer(partial=True),
        responses={200: WebhookEndpointSerializer, 400: PROBLEM, 404: PROBLEM, **DENIED},
    )
    def patch(self, request, endpoint_id):
        """Changes the fields given. `active: false` holds deliveries back (events emitted meanwhile are not
        sent to it); `active: true` again sends what waited, each order's events in sequence."""
        endpoints.endpoint_get(endpoint_id=endpoint_id)
        serializer = WebhookEndpointWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = endpoints.endpoint_update(endpoint_id=endpoint_id, **serializer.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None, 404: PROBLEM, **DENIED})
    def delete(self, request, endpoint_id):
        """Deletes the subscription and its deliveries: pending ones are not sent (one being sent right now
        may still arrive)."""
        endpoints.endpoint_delete(endpoint_id=endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateSecretView(APIView):
    permission_classes = [allow(MANAGER)]

    @extend_schema(request=None, responses={200: WebhookEndpointSecretSerializer, 404: PROBLEM, **DENIED})
    def post(self, request, endpoint_id):
        """Replaces the signing secret and returns the new one, shown this once. The old secret stops working
        immediately: every delivery from now on, retries of earlier events included, is signed with the new
        one, so update the subscriber right away (signatures fail there until then, and those deliveries
        are retried)."""
        endpoint = endpoints.endpoint_rotate_secret(endpoint_id=endpoint_id)
        return Response(WebhookEndpointSecretSerializer(endpoint).data)
