"""The `Idempotency-Key` protocol for POSTs that create something.

The key, a hash of the request, the state (processing / completed) and the stored response live in the
database, unique per (caller, key), so the guarantee holds across processes:
- same key + same request: the stored response comes back with `Idempotent-Replayed: true`;
- same key + a different request: 422 `idempotency_key_reused`;
- same key while the first request is still running: it waits for the first to commit and gets its response
  (handlers in one transaction, such as placing an order: the record is written in that transaction, and
  the twin waits on its unique key), or 409 `idempotency_request_in_progress` (handlers that call Mercado
  Pago, which commit their record first and work outside any transaction).
Only successful (2xx) responses are stored: a request that failed changed nothing, so its key may be retried.
The handler's writes and the stored response commit in one transaction, so a crash can never leave an
order without its record (or the reverse).
"""

import contextlib
import functools
import hashlib
import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext
from rest_framework.response import Response

from kiosk.api import parse_json_safely
from kiosk.models import IdempotencyRecord
from kiosk.problems import Conflict, DomainError

HEADER = "Idempotency-Key"
REPLAYED_HEADERS = ("Location",)
MAX_KEY_LENGTH = 255


class IdempotencyKeyInvalid(DomainError):
    status = 400
    code = "idempotency_key_invalid"


class IdempotencyKeyReused(DomainError):
    status = 422
    code = "idempotency_key_reused"


class IdempotencyInProgress(Conflict):
    code = "idempotency_request_in_progress"


def IN_PROGRESS() -> str:
    return gettext("A request with this Idempotency-Key is still being processed; retry shortly.")


class _TakenOver(Exception):
    """Our record was reclaimed as stale while we ran: roll back so the work is done only once."""


def request_fingerprint(request) -> str:
    """Method, path (trailing slash optional, as in the routes) and the JSON body with keys sorted."""
    body = request.body
    parsed = parse_json_safely(body)
    canonical = body if parsed is None else json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    path = request.path.rstrip("/").encode("utf-8", "surrogateescape")
    digest = hashlib.sha256()
    for part in (request.method.encode(), path, canonical):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= MAX_KEY_LENGTH and all(32 < ord(ch) < 127 for ch in key)


def _claim(*, user, key: str, method: str, path: str, fingerprint: str):
    """Insert a `processing` record, or explain why we may not: returns (record, None) or (None, replay)."""
    for _ in range(3):
        now = timezone.now()
        try:
            # A savepoint only inside a caller's transaction (tests); alone, one autocommitted INSERT.
            with transaction.atomic() if transaction.get_connection().in_atomic_block else contextlib.nullcontext():
                record = IdempotencyRecord.objects.create(
                    user=user,
                    key=key,
                    request_method=method,
                    request_path=path[:255],
                    request_hash=fingerprint,
                    expires_at=now + settings.IDEMPOTENCY_KEY_TTL,
                )
            return record, None
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if existing is None:
            continue  # purged between our insert and our read
        stale = (
            existing.state == IdempotencyRecord.State.PROCESSING
            and existing.updated_at < now - settings.IDEMPOTENCY_STALE_AFTER
        )
        if existing.expires_at <= now or stale:
            IdempotencyRecord.objects.filter(pk=existing.pk, updated_at=existing.updated_at).delete()
            continue
        if existing.request_hash != fingerprint:
            raise IdempotencyKeyReused(
                gettext("This %(header)s was already used for a different request; use a new key for a new request.")
                % {"header": HEADER}
            )
        if existing.state == IdempotencyRecord.State.PROCESSING:
            raise IdempotencyInProgress(IN_PROGRESS())
        headers = {**existing.response_headers, "Idempotent-Replayed": "true"}
        return None, Response(existing.response_body, status=existing.response_status, headers=headers)
    raise IdempotencyInProgress(IN_PROGRESS())


def idempotent(*, required: bool = True, atomic: bool = True):
    """Decorator for a DRF view method (`def post(self, request, ...)`) that creates something.

    `atomic=False` is for handlers that call Mercado Pago, which must not happen inside a transaction; their
    service must then be idempotent by itself (checkout is: it returns the payment it already made).
    """

    def decorator(view_method):
        @functools.wraps(view_method)
        def wrapper(self, request, *args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                if required:
                    raise IdempotencyKeyInvalid(
                        gettext("The %(header)s header is required (1 to %(most)d characters).")
                        % {"header": HEADER, "most": MAX_KEY_LENGTH}
                    )
                return view_method(self, request, *args, **kwargs)
            if not _valid_key(key):
                raise IdempotencyKeyInvalid(
                    gettext("The %(header)s header must be 1 to %(most)d printable ASCII characters without spaces.")
                    % {"header": HEADER, "most": MAX_KEY_LENGTH}
                )
            claim = {
                "user": request.user,
                "key": key,
                "method": request.method,
                "path": request.path,
                "fingerprint": request_fingerprint(request),
            }
            if atomic:
                return _run_in_one_transaction(claim, lambda: view_method(self, request, *args, **kwargs))
            record, replay = _claim(**claim)
            if replay is not None:
                return replay
            try:
                response = view_method(self, request, *args, **kwargs)
                if 200 <= response.status_code < 300:
                    _complete(record, response)
            except _TakenOver:
                raise IdempotencyInProgress(
                    gettext("This request was retried elsewhere after a long delay; retry to see the result.")
                ) from None
            except BaseException:
                IdempotencyRecord.objects.filter(pk=record.pk).delete()
                raise
            if not 200 <= response.status_code < 300:
                IdempotencyRecord.objects.filter(pk=record.pk).delete()
            return response

        return wrapper

    return decorator


def _run_in_one_transaction(claim: dict, handle):
    """The record, the handler's writes and the stored response in one transaction: one commit, and a crash
    leaves neither an order without its record nor a record without its order. A twin request with the same
    key waits on the record's unique key until this one commits, then gets the stored response (or, if this
    one failed and rolled back, does the work itself)."""
    with transaction.atomic():
        record, replay = _claim(**claim)
        if replay is not None:
            return replay
        response = handle()
        if 200 <= response.status_code < 300:
            _complete(record, response)
        else:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return response


def _complete(record, response) -> None:
    """Stores the response on the record this request claimed; _TakenOver if the record is no longer ours."""
    completed = IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.PROCESSING).update(
        state=IdempotencyRecord.State.COMPLETED,
        response_status=response.status_code,
        response_body=json.loads(json.dumps(response.data, cls=DjangoJSONEncoder)),
        response_headers={h: response[h] for h in REPLAYED_HEADERS if response.has_header(h)},
        updated_at=timezone.now(),
    )
    if not completed:
        raise _TakenOver


def purge_expired_keys(*, now=None) -> int:
    """Deletes expired records; `manage.py purge_idempotency_keys` runs it."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
