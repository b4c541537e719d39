"""DRF plumbing shared by every endpoint: the JSON parser, renderers and pagination, hardened against
hostile input (deep nesting, exotic charsets, absurd page sizes)."""

import codecs
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, HttpResponseNotModified
from django.http.response import HttpResponseBase
from django.utils.http import http_date, parse_etags
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class PickupBoardThrottle(AnonRateThrottle):
    """The public pickup board, per client address (behind the TLS proxy, the customer's, not the proxy's)."""

    scope = "pickup_board"

    def get_ident(self, request):
        from kiosk.auth import client_ip

        return client_ip(request)


class CPFLookupThrottle(UserRateThrottle):
    """Looking customers up by CPF, per login (a kiosk terminal's): nobody walks the CPF space through us."""

    scope = "cpf_lookup"


# JSON text is UTF-8 (RFC 8259); UTF-16/32 and Latin-1 are tolerated for old clients.
ALLOWED_CHARSETS = {"utf-8", "utf-16", "utf-32", "ascii", "iso8859-1"}


class StrictJSONParser(JSONParser):
    """JSON only, in a sane charset, and a parse error (not a crash) for pathological nesting."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding") or settings.DEFAULT_CHARSET
        try:
            canonical = codecs.lookup(encoding).name
        except LookupError:
            canonical = None
        if canonical not in ALLOWED_CHARSETS:
            raise UnsupportedMediaType(
                media_type,
                detail=gettext("Unsupported charset '%(charset)s'; send UTF-8 JSON.") % {"charset": encoding},
            )
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(gettext("JSON parse error - the document is nested too deeply."))


def parse_json_safely(raw: bytes):
    """json.loads that returns None instead of raising on anything a client can send."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


class ProblemJSONRenderer(JSONRenderer):
    """Lets clients that send `Accept: application/problem+json` get an answer instead of a 406."""

    media_type = "application/problem+json"


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """`limit` (1 up; more than 200 gives 200) and `offset` (0 up; clamped to 10**9): anything else, such as
    `limit=-1` or `offset=abc`, is a 400 validation_error like any other bad parameter, not silently the default."""

    default_limit = 50
    max_limit = 200
    max_offset = 10**9

    def get_limit(self, request):
        return min(self._count(request, self.limit_query_param, least=1, default=self.default_limit), self.max_limit)

    def get_offset(self, request):
        return min(self._count(request, self.offset_query_param, least=0, default=0), self.max_offset)

    @staticmethod
    def _count(request, name: str, *, least: int, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            if not (raw.isascii() and raw.isdigit()):  # IntegerField takes "5.0", "+5", " 5", other scripts' digits
                raise serializers.ValidationError(gettext("A whole number of at least %(least)d.") % {"least": least})
            return serializers.IntegerField(min_value=least).run_validation(raw)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({name: exc.detail}) from None

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            least = 1 if parameter["name"] == self.limit_query_param else 0
            parameter["schema"]["minimum"] = least
        return parameters


# --- OpenAPI pieces shared by the views -----------------------------------------------------------

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="1 to 255 characters, unique per request; a retry with the same key returns the stored response.",
)
OPTIONAL_IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False
)
PROBLEM = OpenApiResponse(description="Problem details (application/problem+json) with a stable `code`.")


# --- Serializers that take JSON at its word ------------------------------------------------------


class StrictMixin:
    """Unknown fields are a client bug worth telling about, not something to ignore silently."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: [gettext("Unknown field.")] for name in unknown})
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and nothing else: no "2", no 2.0, no true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string and nothing else: a number where text belongs is a client bug."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false; not "yes", 1 or "on"."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
"""A date as YYYY-MM-DD, ASCII digits (Python's fromisoformat also takes week dates and compact forms)."""

_MONEY = re.compile(r"^[0-9]{1,8}(\.[0-9]{1,2})?$")


class MoneyField(serializers.DecimalField):
    """Money in, as in out: a decimal string such as "25.90". Never a float."""

    default_error_messages = {"format": _('Send money as a decimal string with up to 2 decimals, e.g. "25.90".')}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 10)
        kwargs.setdefault("decimal_places", 2)
        kwargs.setdefault("min_value", Decimal("0.01"))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not _MONEY.match(data):
            self.fail("format")
        return super().to_internal_value(data)


# --- Conditional GET ------------------------------------------------------------------------------


def _not_modified(request, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return wanted.strip() == "*" or etag in {tag.removeprefix("W/") for tag in parse_etags(wanted)}


def conditional_response(request, data, *, last_modified: datetime | None = None) -> HttpResponseBase:
    """`data` as a 200 with an ETag, or `304 Not Modified` (no body) when the client's If-None-Match holds it.

    The ETag is a hash of the answer itself, so it changes exactly when the answer does (a price, an option
    switched off, a product selling out, what this caller's role may see), whatever changed it. The work of
    reading is still done; what a kiosk saves is the download and its re-rendering."""
    body = json.dumps(data, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"))
    etag = f'"{hashlib.sha256(body.encode()).hexdigest()[:40]}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified.timestamp())
    if _not_modified(request, etag):
        response = HttpResponseNotModified()
        for name, value in headers.items():
            response[name] = value
        return response
    return Response(data, headers=headers)


# How long a rendered answer stays in the cache at most: it is replaced as soon as what it shows changes, so
# this only bounds the memory of answers nobody asks for any more.
RENDERED_TTL = 300


def cached_json_response(request, *, key: str, stamp: str, build) -> HttpResponseBase:
    """A read that many screens poll, rendered once per state of the data: `key` names what is shown (the view
    and the caller's scope of it), `stamp` the state of the data (given by the database in one cheap query, so
    every process and pod agrees when it moved), `build()` returns `(data, last_modified)` when the rendering
    cached under `key` is of another stamp, or missing. Answers the rendered JSON with an ETag (a hash of the
    body), or 304 for If-None-Match, without re-serializing anything.

    The cache is Django's (per process by default, Redis with CACHE_URL). One entry per `key`, holding its stamp:
    a new state replaces the old rendering instead of adding one beside it (under a key per state, a kitchen
    queue moving every second filled the cache with renderings nobody would ask for again, ~90 KB each, until
    the cache's entry limit culled them, throttle counters with them). An entry is only served while its stamp
    is the current one, so the answer is never older than the stamp."""
    stamp = str(stamp)
    entry = cache.get(key)
    if entry is None or entry[0] != stamp:
        data, last_modified = build()
        body = JSONRenderer().render(data)
        etag = f'"{hashlib.sha256(body).hexdigest()[:40]}"'
        entry = (stamp, body, etag, http_date(last_modified.timestamp()) if last_modified else None)
        cache.set(key, entry, RENDERED_TTL)
    _, body, etag, last_modified = entry
    response = HttpResponseNotModified() if _not_modified(request, etag) else HttpResponse(body)
    if response.status_code == 200:
        response["Content-Type"] = "application/json"
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    if last_modified:
        response["Last-Modified"] = last_modified
    return response


def cache_key(*parts) -> str:
    """A cache key from request-controlled parts (a category slug...): hashed, so any input makes a valid key."""
    return hashlib.sha256("\0".join(str(part) for part in parts).encode("utf-8", "surrogatepass")).hexdigest()
