"""Logging: one JSON object per line in production, with the request id and route; personal data and
credentials never reach a log (CPFs, e-mail addresses, bearer tokens, JWTs, Mercado Pago access tokens)."""

import logging
import re

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from kiosk.middleware import current_request_id, current_route

# A UUID or a 32-digit hex id (task, order, request and idempotency ids) is kept whole: eleven digits in a row
# inside one are not a CPF, and masking them made the id unreadable (and unsearchable) in the log.
_CPF = re.compile(
    r"(?P<id>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b|\b[0-9a-fA-F]{32}\b)"
    r"|(?<!\d)\d{3}\.?(?P<b>\d{3})\.?(?P<c>\d{3})-?\d{2}(?!\d)"
)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_MP_TOKEN = re.compile(r"\b(APP_USR|TEST)-[0-9][0-9A-Za-z-]{15,}")


def _mask_cpf(match: re.Match) -> str:
    return match["id"] or f"***.{match['b']}.{match['c']}-**"


def mask_pii(text: str) -> str:
    text = _JWT.sub("eyJ***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _MP_TOKEN.sub(r"\1-***", text)
    text = _CPF.sub(_mask_cpf, text)
    return _EMAIL.sub(r"\1***@\2", text)


class MaskPIIFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        record.route = current_route.get()
        # django.request logs a 4xx/5xx after the middleware has finished: the request it names still knows.
        request = getattr(record, "request", None)
        if record.request_id == "-" and hasattr(request, "request_id"):
            record.request_id = request.request_id
            record.route = request.META.get("kiosk.route", "")
        return True


class JsonFormatter(_JsonFormatter):
    """python-json-logger's formatter; the whole line is masked, tracebacks and extra fields included.
    Django's `request` object is left out: its text is the full path, query string and all."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request"])
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return mask_pii(super().format(record))
