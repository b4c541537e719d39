from django.apps import AppConfig


class EventsConfig(AppConfig):
    """Domain events (the outbox) and the outgoing webhooks that deliver them to the restaurant's systems."""

    name = "kiosk.events"
    label = "events"
    verbose_name = "Events and webhooks"
