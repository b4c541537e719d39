"""Background work: how a task is declared and enqueued, how a failed one is retried, how a worker is seen.

The engine is Django's tasks framework (`django-tasks`, the backport of Django 6's `django.tasks`) with the ORM
backend `django-tasks-db`. A task is a row in `django_tasks_db_dbtaskresult`, written with the ORM in the
caller's transaction: enqueued by a service inside its `transaction.atomic()`, it is committed with the change
or vanishes with a rollback (the transactional outbox). Workers claim rows with SELECT ... FOR UPDATE SKIP
LOCKED (`manage.py run_worker`, see kiosk/worker.py), so any number of them can run.

What django-tasks-db leaves to us, and this module adds on top of its own rows (no queue of our own):
- retries: a task that raises is put back to READY with `run_after` set by exponential backoff with jitter,
  until its policy's `max_attempts` (attempts are the framework's own: one worker id per run); then it stays
  FAILED, which the admin shows as "dead", with the last traceback, and can run again;
- the correlation id (the `X-Request-ID` of the request, or the Mercado Pago delivery, that started the
  work), carried as a task argument and set again in the worker so its log lines and events carry it;
- a worker heartbeat and the recovery of tasks a killed worker left RUNNING (kiosk/worker.py).
"""

import contextlib
import functools
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import task

from kiosk.middleware import current_cause, current_request_id

logger = logging.getLogger("kiosk.jobs")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 5.0  # seconds before the 2nd attempt; doubles each time
    max_delay: float = 1800.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the `attempt`-th failure: full backoff with jitter in [half, whole]."""
        whole = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        return random.uniform(whole / 2, whole)  # noqa: S311 - jitter, not a secret


POLICIES: dict[str, RetryPolicy] = {}  # task module path -> its retry policy


def job(*, max_attempts: int = 8, base_delay: float = 5.0, max_delay: float = 1800.0, priority: int = 0):
    """Declares a background task: `@job()` over a function taking JSON-able arguments.

    The function must be safe to run again (at least once: a killed worker's task is run again, a retry
    repeats the work that failed). Enqueue it with `enqueue(the_task, ...)`.
    """

    def decorate(func):
        @functools.wraps(func)
        def run(*args, correlation_id: str = "-", causation_id: str = "", **kwargs):
            token, cause = current_request_id.set(correlation_id), current_cause.set(causation_id)
            try:
                return func(*args, **kwargs)
            finally:
                current_request_id.reset(token)
                current_cause.reset(cause)

        declared = task(priority=priority)(run)
        POLICIES[declared.module_path] = RetryPolicy(max_attempts, base_delay, max_delay)
        return declared

    return decorate


def enqueue(declared, *args, delay: float | None = None, **kwargs):
    """Enqueues a task in the current transaction (if any), carrying the correlation id and the last event."""
    kwargs.setdefault("correlation_id", current_request_id.get())
    kwargs.setdefault("causation_id", current_cause.get())
    if delay:
        declared = declared.using(run_after=timezone.now() + timedelta(seconds=delay))
    return declared.enqueue(*args, **kwargs)


def policy_for(task_path: str) -> RetryPolicy:
    """The retry policy of the task at `task_path`, importing its module if this process has not yet (a policy
    is registered when its @job runs). A task no longer in the code gets one attempt."""
    if task_path not in POLICIES:
        with contextlib.suppress(ImportError, AttributeError, ValueError):
            import_string(task_path)
    return POLICIES.get(task_path, RetryPolicy(max_attempts=1))
