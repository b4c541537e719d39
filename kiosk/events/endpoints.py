"""Managing webhook subscriptions (WebhookEndpoint): create, change, rotate the signing secret, delete.

The REST API calls these; the rules on URLs and event types are the shared ones in validation.py.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from kiosk.events.delivery import deliveries_resume
from kiosk.events.models import WebhookEndpoint, new_secret
from kiosk.events.validation import clean_endpoint_events, clean_endpoint_url
from kiosk.problems import DomainError


class EndpointNotFound(DomainError):
    status = 404
    code = "not_found"

    def __init__(self, endpoint_id: int):
        super().__init__(gettext("No webhook endpoint with id %(id)s.") % {"id": endpoint_id})


def endpoints_list():
    return WebhookEndpoint.objects.order_by("pk")


def endpoint_get(*, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise EndpointNotFound(endpoint_id)
    return endpoint


def _locked(endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
    if endpoint is None:
        raise EndpointNotFound(endpoint_id)
    return endpoint


def _checked(*, url: str | None, events: list[str] | None) -> dict:
    """The shared rules on what changes, every bad field reported at once. Before any row is locked: the URL
    check resolves its host, which may take seconds, and a locked endpoint holds up every order's events."""
    cleaned, errors = {}, {}
    for field, value, clean in (("url", url, clean_endpoint_url), ("events", events, clean_endpoint_events)):
        if value is None:
            continue
        try:
            cleaned[field] = clean(value)
        except ValidationError as exc:
            errors[field] = [exc]
    if errors:
        raise ValidationError(errors)
    return cleaned


@transaction.atomic
def endpoint_create(*, url: str, events: list[str], active: bool = True, description: str = "") -> WebhookEndpoint:
    """A new subscription, with a fresh signing secret (shown to the caller once, by the API)."""
    endpoint = WebhookEndpoint(active=active, description=description, **_checked(url=url, events=events))
    endpoint.full_clean()
    endpoint.save()
    return endpoint


def endpoint_update(
    *,
    endpoint_id: int,
    url: str | None = None,
    events: list[str] | None = None,
    active: bool | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    """Changes what is given (None: unchanged). Deactivated, its deliveries wait; active again, what waited
    is sent, each order's events in sequence. Events emitted meanwhile are not for it (not subscribed then)."""
    changes = _checked(url=url, events=events)
    with transaction.atomic():
        endpoint = _locked(endpoint_id)
        reactivated = active is True and not endpoint.active
        if active is not None:
            changes["active"] = active
        if description is not None:
            changes["description"] = description
        for field, value in changes.items():
            setattr(endpoint, field, value)
        endpoint.full_clean()
        endpoint.save()
        if reactivated:
            deliveries_resume(endpoint_id=endpoint.pk)
    return endpoint


@transaction.atomic
def endpoint_rotate_secret(*, endpoint_id: int) -> WebhookEndpoint:
    """A new signing secret, in force at once: every delivery from now on, retries included, is signed with
    it; the old one stops verifying immediately (there is no overlap)."""
    endpoint = _locked(endpoint_id)
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret", "updated_at"])
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint_id: int) -> None:
    """Deletes the subscription with its deliveries (pending ones included: they will not be sent) and their
    attempt log. A delivery being sent at that moment may still arrive once."""
    _locked(endpoint_id).delete()
