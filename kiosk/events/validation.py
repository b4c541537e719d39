"""What a webhook endpoint may be: checked the same way by the REST API and the admin."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext

from kiosk.events.outbound import UrlNotAllowed, check_url
from kiosk.events.services import EVENT_TYPES

MAX_URL_LENGTH = 500


def clean_endpoint_url(url: str) -> str:
    """An http(s) URL to a public address (SSRF: see outbound.check_url), at most 500 characters."""
    url = (url or "").strip()
    if not url:
        raise ValidationError(gettext("Give the URL the events are POSTed to."), code="required")
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(
            gettext("The URL is longer than %(most)d characters.") % {"most": MAX_URL_LENGTH}, code="max_length"
        )
    try:
        check_url(url)
    except UrlNotAllowed as exc:
        raise ValidationError(str(exc), code="url_not_allowed") from None
    return url


def clean_endpoint_events(events) -> list[str]:
    """A non-empty list of known event types, or ["*"] for all of them; duplicates dropped, order kept."""
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValidationError(gettext('Give a list of event types, or ["*"] for all.'), code="invalid")
    unique = list(dict.fromkeys(events))
    if "*" in unique:
        if len(unique) > 1:
            raise ValidationError(gettext('"*" already means every event type: give it alone.'), code="invalid")
        return unique
    unknown = [e for e in unique if e not in EVENT_TYPES]
    if unknown:
        raise ValidationError(
            gettext("Unknown event type(s): %(unknown)s. Known: %(known)s.")
            % {"unknown": ", ".join(sorted(unknown)), "known": ", ".join(sorted(EVENT_TYPES))},
            code="unknown_event_type",
        )
    return unique
