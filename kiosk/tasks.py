"""Periodic jobs of the platform itself (the worker's schedule is in kiosk/worker.py)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from kiosk.idempotency import purge_expired_keys
from kiosk.jobs import job


@job(max_attempts=3)
def purge_idempotency_keys() -> int:
    return purge_expired_keys()


def finished_tasks_prune(*, now=None) -> int:
    """Deletes successful tasks older than TASKS_KEEP_SUCCEEDED_DAYS. Dead ones stay until someone looks."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TASKS_KEEP_SUCCEEDED_DAYS)
    deleted, _ = DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL, finished_at__lt=cutoff).delete()
    return deleted


@job(max_attempts=3)
def prune_finished_tasks() -> int:
    return finished_tasks_prune()


def expired_tokens_flush(*, now=None) -> int:
    """Deletes refresh tokens past their expiry (and their blacklist entries): what simplejwt's
    `flushexpiredtokens` command does, on the worker's schedule."""
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    deleted, _ = OutstandingToken.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


@job(max_attempts=3)
def flush_expired_tokens() -> int:
    return expired_tokens_flush()
