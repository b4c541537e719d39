"""The worker process (`manage.py run_worker`): django-tasks-db's worker plus what a restaurant needs of it.

- Retries: a task that raised goes back to the queue after a backoff (kiosk/jobs.py), or stays FAILED ("dead").
- A heartbeat row (WorkerHeartbeat) refreshed every WORKER_HEARTBEAT_SECONDS; `worker_status` and `/readyz`
  read it. On each beat the worker also puts back in the queue the tasks that a dead worker (no heartbeat for
  WORKER_STALE_SECONDS: SIGKILL, a lost pod) left RUNNING, so a kill loses nothing: the task runs again.
- The schedule: periodic jobs (reconcile payments, cancel stale orders, retry deliveries, purges) enqueued as
  tasks by APScheduler, unless one is already waiting. Every worker may run it: each job is safe to run
  twice at once (SKIP LOCKED claims, idempotent services), so several pods need no leader.
- SIGTERM or Ctrl-C: the task in hand finishes, then the worker exits (a second signal stops it at once).
"""

import logging
import os
import socket
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker as DBWorker
from django_tasks_db.models import DBTaskResult

from kiosk.jobs import enqueue, policy_for
from kiosk.models import WorkerHeartbeat

logger = logging.getLogger("kiosk.worker")

# Periodic jobs: (task path, setting holding its interval in seconds). Each is also a manage.py command.
SCHEDULE = [
    ("payments.tasks.reconcile_payments", "SCHEDULE_RECONCILE_SECONDS"),
    ("payments.tasks.cancel_stale_orders", "SCHEDULE_CANCEL_STALE_SECONDS"),
    ("payments.tasks.retry_notifications", "SCHEDULE_RETRY_NOTIFICATIONS_SECONDS"),
    ("kiosk.events.tasks.sweep_deliveries", "SCHEDULE_SWEEP_DELIVERIES_SECONDS"),
    ("payments.tasks.purge_notifications", "SCHEDULE_PURGE_SECONDS"),
    ("kiosk.tasks.purge_idempotency_keys", "SCHEDULE_PURGE_SECONDS"),
    ("kiosk.tasks.prune_finished_tasks", "SCHEDULE_PURGE_SECONDS"),
    ("kiosk.tasks.flush_expired_tokens", "SCHEDULE_PURGE_SECONDS"),
    ("orders.tasks.anonymise_customers", "SCHEDULE_ANONYMISE_SECONDS"),
]


def retry_or_bury(row: DBTaskResult) -> bool:
    """After a failed run: back to the queue after a backoff, or left FAILED (dead). Returns True if retried."""
    policy = policy_for(row.task_path)
    attempt = len(row.worker_ids)
    if attempt >= policy.max_attempts:
        logger.error(
            "task %s %s is dead after %s attempt(s): %s", row.pk, row.task_path, attempt, row.exception_class_path
        )
        return False
    delay = policy.delay(attempt)
    DBTaskResult.objects.filter(pk=row.pk, status=TaskResultStatus.FAILED).update(
        status=TaskResultStatus.READY, run_after=timezone.now() + timedelta(seconds=delay), finished_at=None
    )
    logger.warning(
        "task %s %s failed (attempt %s of %s: %s); next attempt in %.0f s",
        row.pk,
        row.task_path,
        attempt,
        policy.max_attempts,
        row.exception_class_path,
        delay,
    )
    return True


def run_again(task_ids) -> int:
    """The admin's "Run again": dead (FAILED) tasks back to the queue now. Their history stays."""
    return DBTaskResult.objects.filter(pk__in=task_ids, status=TaskResultStatus.FAILED).update(
        status=TaskResultStatus.READY, run_after=timezone.now(), finished_at=None
    )


def recover_abandoned(*, now=None) -> int:
    """Puts back in the queue the RUNNING tasks whose worker stopped beating (killed, or its machine lost)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKER_STALE_SECONDS)
    alive = set(WorkerHeartbeat.objects.filter(seen_at__gte=cutoff).values_list("worker_id", flat=True))
    recovered = 0
    with transaction.atomic():
        running = DBTaskResult.objects.select_for_update(skip_locked=True).filter(
            status=TaskResultStatus.RUNNING, started_at__lt=cutoff
        )
        for row in running:
            if row.worker_ids and row.worker_ids[-1] in alive:
                continue  # a long task of a live worker
            if len(row.worker_ids) >= policy_for(row.task_path).max_attempts:
                # It took its worker down every time (out of memory, a crash): dead, not queued for ever.
                DBTaskResult.objects.filter(pk=row.pk).update(
                    status=TaskResultStatus.FAILED,
                    finished_at=now,
                    exception_class_path="kiosk.worker.WorkerLost",
                    traceback=f"The worker running it stopped without finishing it, {len(row.worker_ids)} time(s) "
                    "(killed, out of memory, or its machine lost).",
                )
                logger.error(
                    "task %s %s dead: its worker stopped %s time(s)", row.pk, row.task_path, len(row.worker_ids)
                )
                continue
            DBTaskResult.objects.filter(pk=row.pk).update(status=TaskResultStatus.READY, run_after=now)
            logger.warning("task %s %s abandoned by worker %s: queued again", row.pk, row.task_path, row.worker_ids)
            recovered += 1
    # Rows of workers gone for a day: read first, so that the usual case (none) locks nothing.
    gone = list(WorkerHeartbeat.objects.filter(seen_at__lt=now - timedelta(days=1)).values_list("pk", flat=True))
    if gone:
        WorkerHeartbeat.objects.filter(pk__in=gone).delete()
    return recovered


def enqueue_scheduled(task_path: str) -> bool:
    """One tick of the schedule: enqueues the job unless a run of it is already waiting or running."""
    close_old_connections()
    try:
        waiting = DBTaskResult.objects.filter(
            task_path=task_path, status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING]
        ).exists()
        if not waiting:
            enqueue(import_string(task_path), correlation_id=f"schedule:{task_path.rsplit('.', 1)[-1]}")
        return not waiting
    except Exception:  # a database hiccup must not kill the scheduler thread; the next tick tries again
        logger.exception("could not enqueue scheduled job %s", task_path)
        return False
    finally:
        connection.close()


class Worker(DBWorker):
    def __init__(self, *, schedule: bool, **options):
        self._task_in_hand = False
        super().__init__(**options)
        self.schedule = schedule
        self.current_task = ""
        self._stop = threading.Event()
        self._scheduler = None

    # --- heartbeat ---
    def beat(self) -> None:
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={
                "hostname": socket.gethostname()[:255],
                "pid": os.getpid(),
                "seen_at": now,
                "tasks_run": self._run_tasks,
                "current_task": self.current_task[:255],
            },
            create_defaults={
                "hostname": socket.gethostname()[:255],
                "pid": os.getpid(),
                "started_at": now,
                "seen_at": now,
            },
        )

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
            try:
                self.beat()
                recover_abandoned()
            except Exception:
                logger.exception("heartbeat failed; trying again")
            finally:
                connection.close()

    def _start_schedule(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(timezone="UTC")
        start = timezone.now() + timedelta(seconds=2)
        for task_path, setting in SCHEDULE:
            seconds = getattr(settings, setting)
            if seconds > 0:
                self._scheduler.add_job(
                    enqueue_scheduled,
                    "interval",
                    args=[task_path],
                    seconds=seconds,
                    next_run_time=start,
                    id=task_path,
                    coalesce=True,
                    max_instances=1,
                )
        self._scheduler.start()

    def run(self) -> None:
        self.beat()
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        if self.schedule:
            self._start_schedule()
        try:
            super().run()
        finally:
            self._stop.set()
            if self._scheduler is not None:
                self._scheduler.shutdown(wait=False)
            heartbeat.join(timeout=5)
            try:
                # A SIGTERM exits wherever the worker was, a claim's transaction included: a new connection
                # leaves that transaction behind (rolled back) instead of failing inside it.
                connection.close()
                WorkerHeartbeat.objects.filter(worker_id=self.worker_id).delete()
            except Exception:
                logger.exception("could not remove this worker's heartbeat")
            logger.info("worker %s stopped after %s task(s)", self.worker_id, self._run_tasks)

    # django-tasks-db's SIGTERM handler exits at once unless `running_task` is true, and its run_task sets it
    # false as soon as the task returns: our retry bookkeeping afterwards must count as "the task in hand",
    # else a SIGTERM there leaves a failed task dead with attempts left.
    @property
    def running_task(self) -> bool:
        return self._task_in_hand or self._library_running_task

    @running_task.setter
    def running_task(self, value: bool) -> None:
        self._library_running_task = value

    def run_task(self, db_task_result: DBTaskResult) -> None:
        self.current_task = f"{db_task_result.task_path} {db_task_result.pk}"
        self._task_in_hand = True
        try:
            super().run_task(db_task_result)
            if db_task_result.status == TaskResultStatus.FAILED:
                retry_or_bury(db_task_result)
        finally:
            self._task_in_hand = False
            self.current_task = ""


def alive_workers(*, now=None, hostname: str | None = None) -> int:
    """How many workers (on `hostname`, or anywhere) have beaten within WORKER_STALE_SECONDS (one indexed
    query: /readyz asks it)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.WORKER_STALE_SECONDS)
    beats = WorkerHeartbeat.objects.filter(seen_at__gte=cutoff)
    return (beats.filter(hostname=hostname) if hostname else beats).count()


def worker_status(*, now=None, hostname: str | None = None) -> dict:
    """What `worker_status` reports: live workers (on `hostname`, or anywhere) and the queue (ready, due,
    running, dead)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKER_STALE_SECONDS)
    beats = WorkerHeartbeat.objects.order_by("-seen_at")
    beats = list((beats.filter(hostname=hostname) if hostname else beats)[:50])
    tasks = DBTaskResult.objects
    return {
        "alive": alive_workers(now=now, hostname=hostname),
        "last_seen": beats[0].seen_at.isoformat() if beats else None,
        "workers": [
            {
                "worker_id": b.worker_id,
                "hostname": b.hostname,
                "pid": b.pid,
                "seen_at": b.seen_at.isoformat(),
                "alive": b.seen_at >= cutoff,
                "tasks_run": b.tasks_run,
                "current_task": b.current_task,
            }
            for b in beats
        ],
        "queue": {
            "due": tasks.ready().count(),
            "waiting": tasks.filter(status=TaskResultStatus.READY).count(),
            "running": tasks.filter(status=TaskResultStatus.RUNNING).count(),
            "dead": tasks.filter(status=TaskResultStatus.FAILED).count(),
        },
    }


def run_pending(*, limit: int = 1000) -> int:
    """Runs, in this process and thread, every task due now (retries included), until none is left or
    `limit` ran: the tests' worker, and a one-shot drain. The queue is the same; only the loop is simpler
    (no heartbeat, no schedule, no connection recycling inside a caller's transaction)."""
    from django_tasks_db.utils import exclusive_transaction

    worker = Worker(
        queue_names=["*"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="inline",
        excluded_queue_names=[],
        schedule=False,
    )
    for _ in range(limit):
        with exclusive_transaction(DBTaskResult.objects.db):
            row = DBTaskResult.objects.ready().get_locked()
            if row is None:
                break
            row.claim(worker.worker_id)
        worker.run_task(row)
    return worker._run_tasks
