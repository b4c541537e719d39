"""Routes of the webhook-endpoint API under /api/v1/ (trailing slash optional, as everywhere)."""

from django.urls import re_path

from kiosk.events import views

ID = r"(?P<endpoint_id>[0-9]{1,18})"

urlpatterns = [
    re_path(r"^webhook-endpoints/?$", views.WebhookEndpointListView.as_view(), name="webhook-endpoint-list"),
    re_path(rf"^webhook-endpoints/{ID}/?$", views.WebhookEndpointDetailView.as_view(), name="webhook-endpoint-detail"),
    re_path(
        rf"^webhook-endpoints/{ID}/rotate-secret/?$",
        views.WebhookEndpointRotateSecretView.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
]
