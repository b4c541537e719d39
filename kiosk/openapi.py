"""The OpenAPI schema says what the API answers on a bad day too: every error as a problem+json document with its
`code` values, the headers an operation reads, and what every response carries.

A view names the problems only it can answer: `responses={409: problem("out_of_stock", ...)}`. The rest is
worked out here once, from what the operation is (`postprocess`, a drf-spectacular postprocessing hook): a 401
for an operation that needs a login, a 404 for one on an object, 400/413/415 for one with a body, the
Idempotency-Key's 400/409/422, 429 for a throttled view, 503 busy_retry for a write and database_unavailable
for any... tests/test_schema.py checks the result, tests/test_schemathesis.py checks it against the running API."""

import copy

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

PROBLEM_CONTENT_TYPE = "application/problem+json"  # as kiosk.problems says; not imported: this module loads early
_CODES = "x-problem-codes"  # a marker problem() leaves in the schema for postprocess, which removes it

# Operations whose views are not ours (simplejwt's): what they answer besides a 200, by operationId.
_DECLARED = {
    "v1_auth_token_create": {401: ["authentication_failed"], 429: ["too_many_failed_logins"]},
    "v1_auth_token_refresh_create": {401: ["token_not_valid", "authentication_failed"]},
    "v1_auth_logout_create": {401: ["token_not_valid"]},
}
_WRITES = {"post", "put", "patch", "delete"}
_RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
_TITLES = {
    400: "The request is wrong",
    401: "No valid login",
    403: "Not for this login",
    404: "No such object",
    406: "Only JSON is served",
    409: "Conflicts with the object's state",
    413: "The body is too large",
    415: "The body is not JSON",
    422: "Understood, but refused",
    429: "Too many requests",
    502: "Mercado Pago refused",
    503: "Unavailable for a moment: retry",
}

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem document. Branch on `code` (and the status), never on `detail`, which is "
    "for people and follows Accept-Language. Some codes add members of their own (`errors`, `product_id`, "
    "`current`, `target`...): see docs/api.md.",
    "properties": {
        "type": {"type": "string", "format": "uri", "description": "https://kiosk.example/problems/<code>"},
        "title": {"type": "string", "description": "The HTTP status's phrase"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {"type": "string", "description": "Stable: what a program branches on"},
        "detail": {"type": "string", "description": "For a person, in the request's language"},
        "errors": {
            "type": "object",
            "additionalProperties": True,
            "description": "`validation_error` only: the messages, shaped like the request",
        },
    },
    "required": ["type", "title", "status", "code"],
    "additionalProperties": True,
}

HEADERS = {
    "XRequestID": {
        "description": "The request's id: the caller's `X-Request-ID` when it is 1 to 64 of `A-Za-z0-9._-`, "
        "else a new one. Every log line about the request carries it.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
    },
    "RetryAfter": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}},
    "ETag": {
        "description": "A hash of the answer: send it back in `If-None-Match`",
        "required": True,
        "schema": {"type": "string"},
    },
    "IdempotentReplayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

PARAMETERS = {
    "XRequestID": {
        "in": "header",
        "name": "X-Request-ID",
        "required": False,
        "description": "An id of your own for this request (1 to 64 of `A-Za-z0-9._-`): echoed in the answer's "
        "X-Request-ID and in our logs. Any other value is replaced with a new id.",
        "schema": {"type": "string"},
    },
    "IfNoneMatch": {
        "in": "header",
        "name": "If-None-Match",
        "required": False,
        "description": "The ETag of the last answer (weak `W/` and lists too): `304 Not Modified` with no body "
        "while the answer would be the same.",
        "schema": {"type": "string"},
    },
}


# A CPF as people write it (123.456.789-09 or 12345678909); its check digits must be right, which no pattern says:
# `format: cpf` tells a client generator (tests/test_schemathesis.py teaches schemathesis to make valid ones).
CPF_SCHEMA = {
    "type": "string",
    "format": "cpf",
    "pattern": r"^[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}[-.]?[0-9]{2}$",
    "maxLength": 20,
}
# An http(s) URL as Django's URLValidator takes it, with a host name (an address literal may be private: refused).
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = rf"({_LABEL}\.)+[A-Za-z]{{2,63}}"
# Money in: a decimal string with up to 8 digits before the point and 2 after ("25.90"), no sign, no exponent.
_MONEY_PATTERNS = {
    "0.00": r"^(0|[1-9][0-9]{0,7})(\.[0-9]{1,2})?$",
    "0.01": r"^([1-9][0-9]{0,7}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$",
}


class StrictSerializerExtension(OpenApiSerializerExtension):
    """Request bodies of StrictMixin serializers refuse unknown members (`additionalProperties: false`), a list
    that may not be empty says so (`minItems: 1`), and a rule across fields that the serializer's validate()
    enforces is added from its `openapi_rules` (JSON schema keywords)."""

    target_class = "kiosk.api.StrictMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction != "request":
            return schema
        schema["additionalProperties"] = False
        for name, field in self.target.fields.items():
            listed = isinstance(field, serializers.ListSerializer | serializers.ListField)
            if not listed or name not in schema.get("properties", {}):
                continue
            if not field.allow_empty:
                schema["properties"][name]["minItems"] = max(1, schema["properties"][name].get("minItems", 0))
            if field.max_length is not None:  # drf-spectacular leaves it out for a nested many=True serializer
                schema["properties"][name]["maxItems"] = field.max_length
        # A copy: drf-spectacular's enum hook rewrites the schema in place, and the next generation would find
        # the class's rules already rewritten (a $ref to a component it no longer makes).
        schema.update(copy.deepcopy(getattr(self.target, "openapi_rules", {})))
        return schema


# Text that is only whitespace is blank once trimmed (Python's whitespace, which covers more than \s elsewhere).
NOT_BLANK = r"[^\s\x1c-\x1f\x85" + "\u2028\u2029]"  # the last two as characters: not every engine reads \u


class CharFieldExtension(OpenApiSerializerFieldExtension):
    """A text field of a request that trims whitespace and may not be blank says so: at least one character
    that is not whitespace (" " alone is refused like ""). Specific fields' own extensions come first."""

    target_class = "rest_framework.fields.CharField"
    match_subclasses = True
    priority = -1

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        plain = isinstance(schema, dict) and schema.get("type") == "string" and not {"pattern", "format"} & set(schema)
        if direction == "request" and plain and field.trim_whitespace and not field.allow_blank:
            schema["pattern"] = NOT_BLANK
        return schema


class MoneyFieldExtension(OpenApiSerializerFieldExtension):
    """kiosk.api.MoneyField: the decimal strings it takes, from its minimum ("0.00" or "0.01")."""

    target_class = "kiosk.api.MoneyField"

    def map_serializer_field(self, auto_schema, direction):
        least = "0.00" if self.target.min_value is not None and self.target.min_value <= 0 else "0.01"
        return {"type": "string", "format": "decimal", "pattern": _MONEY_PATTERNS[least], "maxLength": 11}


class CPFFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "orders.serializers.CPFField"

    def map_serializer_field(self, auto_schema, direction):
        return dict(CPF_SCHEMA)


def url_schema(*, blank: bool, max_length: int, host: str | None = HOST_NAME) -> dict:
    """An http(s) URL on `host` (a regular expression; None: any URL), or "" when `blank`."""
    url = {"type": "string", "format": "uri", "maxLength": max_length}
    if host:
        url["pattern"] = rf"^https?://({host})(:[1-9][0-9]{{0,3}})?(/[!-~]*)?$"
    return {"anyOf": [url, {"type": "string", "maxLength": 0}]} if blank else url


class ImageURLFieldExtension(OpenApiSerializerFieldExtension):
    """A product's picture: "" when it has none. Sent: an http(s) URL on a host name (Django's URLValidator)."""

    target_class = "orders.serializers.ImageURLField"

    def map_serializer_field(self, auto_schema, direction):
        host = rf"localhost|{HOST_NAME}" if direction == "request" else None
        return url_schema(blank=True, max_length=self.target.max_length or 500, host=host)


def problem(*codes: str, description: str = "") -> OpenApiResponse:
    """An error answer of a view, with the codes only that view gives (those every operation of its kind gives
    are added by `postprocess`)."""
    return OpenApiResponse(response={_CODES: list(codes)}, description=description)


def idempotency_key_schema() -> dict:
    from kiosk.idempotency import MAX_KEY_LENGTH

    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": f"^[!-~]{{1,{MAX_KEY_LENGTH}}}$",
    }


def _generic_problems(*, path: str, method: str, operation: dict, view) -> dict[int, list[str]]:
    """The problems any operation like this one can answer, whatever its view does."""
    codes: dict[int, list[str]] = {}

    def add(status: int, *names: str) -> None:
        codes.setdefault(status, [])
        codes[status] += [name for name in names if name not in codes[status]]

    security = operation.get("security")
    if security and {} not in security:
        add(401, "not_authenticated", "authentication_failed", "token_not_valid")
        add(403, "permission_denied")
    if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
        add(404, "not_found")
    if "requestBody" in operation:
        add(400, "validation_error", "malformed_request")
        add(415, "unsupported_media_type")
    if method in _WRITES:
        add(413, "payload_too_large")
        add(503, "busy_retry")
    if any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])):
        add(400, "idempotency_key_invalid")
        add(409, "idempotency_request_in_progress")
        add(422, "idempotency_key_reused")
    if view is not None and getattr(view, "throttle_classes", None):
        add(429, "throttled")
    add(406, "not_acceptable")
    add(503, "database_unavailable")  # the database went away mid-request: any operation, reads too
    for status, names in _DECLARED.get(operation.get("operationId"), {}).items():
        add(status, *names)
    return codes


def _declared_codes(response: dict) -> list[str]:
    for media in response.get("content", {}).values():
        return list(media.get("schema", {}).get(_CODES, []))
    return []


def _problem_response(status: int, codes: list[str], description: str) -> dict:
    listed = ", ".join(f"`{code}`" for code in codes)
    schema = {
        "allOf": [
            {"$ref": "#/components/schemas/Problem"},
            {"type": "object", "properties": {"status": {"enum": [status]}, "code": {"enum": codes}}},
        ]
    }
    headers = {"X-Request-ID": {"$ref": "#/components/headers/XRequestID"}}
    if status in (429, 503):
        headers.update(_RETRY_AFTER)
    return {
        "description": f"{description or _TITLES.get(status, 'Problem')}. `code`: {listed}.",
        "headers": headers,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
    }


def _document_problems(*, path: str, method: str, operation: dict, view) -> None:
    responses = operation.setdefault("responses", {})
    generic = _generic_problems(path=path, method=method, operation=operation, view=view)
    statuses = sorted({int(s) for s in responses if s.isdigit() and int(s) >= 400} | set(generic))
    for status in statuses:
        declared = responses.get(str(status), {})
        codes = list(dict.fromkeys(_declared_codes(declared) + generic.get(status, [])))
        if not codes:
            raise ValueError(f"{method.upper()} {path}: a {status} without a code; name them with problem(...)")
        responses[str(status)] = _problem_response(status, codes, declared.get("description", ""))
    operation["responses"] = dict(sorted(responses.items()))


def _document_headers(operation: dict) -> None:
    """Headers read (X-Request-ID everywhere, If-None-Match where a 304 can come back, the Idempotency-Key's
    limits) and sent (X-Request-ID on every answer, ETag with a 200 or 304, Idempotent-Replayed)."""
    parameters = operation.setdefault("parameters", [])
    responses = operation.get("responses", {})
    conditional = "304" in responses
    idempotent = False
    for parameter in parameters:
        if parameter.get("in") == "header" and parameter.get("name") == "Idempotency-Key":
            parameter["schema"] = idempotency_key_schema()
            idempotent = True
    parameters.append({"$ref": "#/components/parameters/XRequestID"})
    if conditional:
        parameters.append({"$ref": "#/components/parameters/IfNoneMatch"})
    for status, response in responses.items():
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = {"$ref": "#/components/headers/XRequestID"}
        if conditional and status in ("200", "304"):
            headers["ETag"] = {"$ref": "#/components/headers/ETag"}
        if idempotent and status.startswith("2"):
            headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/IdempotentReplayed"}


def postprocess(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    views = {
        (path, method.lower()): getattr(callback, "cls", None)
        for path, _regex, method, callback in (getattr(generator, "endpoints", None) or [])
    }
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components.setdefault("headers", {}).update(HEADERS)
    components.setdefault("parameters", {}).update(PARAMETERS)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "put", "post", "patch", "delete", "head", "options"}:
                continue
            _document_problems(path=path, method=method, operation=operation, view=views.get((path, method)))
            _document_headers(operation)
    return result
