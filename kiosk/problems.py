"""RFC 9457 problem details: every error that crosses the API has this shape and a stable `code`.

Services raise `DomainError` subclasses; the DRF exception handler and the Django error handlers below
turn them (and DRF's own exceptions) into `application/problem+json` answers.
"""

import json
import logging
import sys
from http import HTTPStatus

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse
from django.utils.translation import gettext
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = logging.getLogger("kiosk.problems")


class DomainError(Exception):
    """A business rule said no. Subclasses set the HTTP status and the stable code.

    `detail` is for a person: written with gettext where it is raised, so it is in the language of the request
    (Portuguese by default, English for `Accept-Language: en`); `code` and the extra members are for programs and
    never change with the language."""

    status = 400
    code = "bad_request"
    title = ""

    def __init__(self, detail: str, *, headers: dict | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.extra = extra


class Conflict(DomainError):
    status = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, *, current: str, target: str):
        super().__init__(
            gettext("An order in status '%(current)s' cannot move to '%(target)s'.")
            % {"current": _status_label(current), "target": _status_label(target)},
            current=current,
            target=target,
        )


class OutOfStock(Conflict):
    code = "out_of_stock"

    def __init__(self, *, product_id: int, product_name: str, available: int):
        super().__init__(
            gettext("Not enough stock for '%(product)s': %(available)d left.")
            % {"product": product_name, "available": available},
            product_id=product_id,
            product_name=product_name,
            available=available,
        )


class ProductUnavailable(Conflict):
    code = "product_unavailable"

    def __init__(self, *, product_id: int, product_name: str):
        super().__init__(
            gettext("'%(product)s' is not available right now.") % {"product": product_name},
            product_id=product_id,
            product_name=product_name,
        )


def _status_label(status: str) -> str:
    """An order status as a person reads it ("In preparation"); the code itself if it is not one."""
    from orders.models import Order

    return str(Order.Status(status).label) if status in Order.Status.values else status


class Invalid(DomainError):
    status = 400
    code = "validation_error"


def problem_body(*, status: int, code: str, detail: str | None = None, title: str | None = None, **extra) -> dict:
    body = {
        "type": f"https://kiosk.example/problems/{code.replace('_', '-')}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return body


def problem_response(*, status: int, code: str, detail: str | None = None, headers=None, **extra) -> Response:
    """A DRF response (rendered by the view's renderer) with the problem+json content type."""
    return Response(
        problem_body(status=status, code=code, detail=detail, **extra),
        status=status,
        headers=headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def problem_json_response(*, status: int, code: str, detail: str | None = None, **extra) -> HttpResponse:
    """A plain Django response, for middleware and Django-level error handlers outside DRF."""
    body = problem_body(status=status, code=code, detail=detail, **extra)
    return HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)


_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def _first_message(errors) -> str:
    """The first human message inside DRF's nested error structure, for the `detail` line."""
    if isinstance(errors, dict):
        for field, value in errors.items():
            message = _first_message(value)
            if message:
                return message if field == "non_field_errors" else f"{field}: {message}"
    elif isinstance(errors, list):
        for value in errors:
            message = _first_message(value)
            if message:
                return message
    elif errors:
        return str(errors)
    return ""


# MySQL/MariaDB deadlock (1213) and lock wait timeout (1205); SQLite's "database is locked".
_LOCK_ERRORS = (1213, 1205)


def _is_lock_contention(exc: OperationalError) -> bool:
    code = exc.args[0] if exc.args else None
    return code in _LOCK_ERRORS or "database is locked" in str(exc)


def exception_handler(exc, context):
    """DRF exception handler: domain errors and DRF errors become problem details; anything else is a bug."""
    if isinstance(exc, DomainError):
        return problem_response(status=exc.status, code=exc.code, detail=exc.detail, headers=exc.headers, **exc.extra)
    if isinstance(exc, RequestDataTooBig):
        return problem_response(status=413, code="payload_too_large", detail=gettext("Request body is too large."))
    if isinstance(exc, OperationalError) and _is_lock_contention(exc):
        return problem_response(
            status=503,
            code="busy_retry",
            detail=gettext(
                "The system is busy with other requests; retry in a moment (with the same Idempotency-Key)."
            ),
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The connection was lost (server gone away, restarted, unreachable): the request's transaction was
        # rolled back with it, so a retry with the same Idempotency-Key is safe. Not a bug: a 503, not a 500.
        view = context.get("view")
        logger.error("database unavailable in %s: %s: %s", type(view).__name__, type(exc).__name__, exc)
        return problem_response(
            status=503,
            code="database_unavailable",
            detail=gettext(
                "The database is not answering right now. Retry in a moment with the same Idempotency-Key; "
                "nothing is done twice."
            ),
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(errors)
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = problem_body(
            status=response.status_code,
            code="validation_error",
            detail=_first_message(errors) or gettext("The request is not valid."),
            errors=errors,
        )
    else:
        # The exact class decides: a subclass (simplejwt's InvalidToken) keeps its own, more precise code.
        code = _DRF_CODES.get(type(exc)) or exc.default_code
        detail = exc.detail
        if isinstance(detail, dict) and "detail" in detail:  # simplejwt nests its message
            detail = detail["detail"]
        if not isinstance(detail, str):
            detail = _first_message(detail)
        body = problem_body(status=response.status_code, code=code, detail=str(detail))
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


# Django-level handlers: URLs no view matched, and crashes outside DRF, still answer problem+json on the API.
def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler404(request, exception=None):
    if _is_api(request):
        return problem_json_response(status=404, code="not_found", detail=gettext("No such resource."))
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    # Django calls this while handling the exception: a lost database connection on a page (the back office,
    # a screen) is a 503 that says to try again, not an error page blaming the code.
    exc = sys.exc_info()[1]
    if isinstance(exc, (OperationalError, InterfaceError)):
        route = request.META.get("kiosk.route") or "unrouted"  # as RequestIdMiddleware named it; never the path
        logger.error("database unavailable at %s: %s: %s", route, type(exc).__name__, exc)
        if _is_api(request):
            response = problem_json_response(
                status=503,
                code="database_unavailable",
                detail=gettext(
                    "The database is not answering right now. Retry in a moment with the same Idempotency-Key; "
                    "nothing is done twice."
                ),
            )
        else:
            response = HttpResponse(
                gettext("The system is not answering right now. Wait a moment and reload the page."),
                status=503,
                content_type="text/plain; charset=utf-8",
            )
        response["Retry-After"] = "5"
        return response
    if _is_api(request):
        return problem_json_response(
            status=500, code="internal_error", detail=gettext("Unexpected error; it was logged.")
        )
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request, exception=None):
    if _is_api(request):
        return problem_json_response(
            status=400, code="bad_request", detail=gettext("The request could not be understood.")
        )
    from django.views.defaults import bad_request

    return bad_request(request, exception)
