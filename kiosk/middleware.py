"""Cross-cutting middleware: a request id on every request and log line, and a cap on API request bodies."""

import logging
import re
import uuid
from contextvars import ContextVar

from django.conf import settings
from django.urls import Resolver404, resolve
from django.utils import translation
from django.utils.translation import gettext

logger = logging.getLogger("kiosk.middleware")
current_request_id: ContextVar[str] = ContextVar("request_id", default="-")
# The route's name ("order-detail"), never the path: a path may hold personal data.
current_route: ContextVar[str] = ContextVar("route", default="")
# The domain event this request or task emitted last: the cause (causation_id) of the next one it emits.
current_cause: ContextVar[str] = ContextVar("current_cause", default="")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Takes a sane `X-Request-ID` from the caller (or makes one) and echoes it on the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token, cause, route = current_request_id.set(request_id), current_cause.set(""), current_route.set("")
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
            current_cause.reset(cause)
            current_route.reset(route)
        response["X-Request-ID"] = request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        route = (match.view_name or match.route or "") if match else ""  # "order-detail", as in /metrics
        current_route.set(route)
        # gunicorn's access log line reads it from the WSGI environ (request.META is that dict).
        request.META["kiosk.route"] = route
        return None


class BodySizeLimitMiddleware:
    """Refuses oversized API bodies with 413 before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def _refusal(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = None
        if length is not None and length <= settings.API_MAX_BODY_BYTES:
            return None  # the usual case: no language to work out
        from kiosk.problems import problem_json_response

        # Before LocaleMiddleware: the refusal's language is read from the request here.
        with translation.override(translation.get_language_from_request(request)):
            if length is None:
                return problem_json_response(
                    status=400, code="bad_request", detail=gettext("The Content-Length header is not a number.")
                )
            logger.warning(
                "request body of %s bytes refused on %s from %s: the limit is %s",
                length,
                _route_name(request.path_info),  # the route, never the path (it may hold personal data)
                request.META.get("REMOTE_ADDR"),
                settings.API_MAX_BODY_BYTES,
            )
            return problem_json_response(
                status=413,
                code="payload_too_large",
                detail=gettext("Request body is %(size)d bytes; the limit is %(limit)d.")
                % {"size": length, "limit": settings.API_MAX_BODY_BYTES},
            )


def _route_name(path: str) -> str:
    try:
        return resolve(path).view_name or "-"
    except Resolver404:
        return "-"
