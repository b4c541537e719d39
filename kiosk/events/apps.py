from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EventsConfig(AppConfig):
    """Domain events (the outbox) and the outgoing webhooks that deliver them to the restaurant's systems."""

    name = "kiosk.events"
    label = "events"
    verbose_name = _("Events and webhooks")
