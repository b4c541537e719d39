"""The worker as its own process (`manage.py run_worker`), as production runs it: graceful stops, kills,
retries, the schedule, and outgoing webhooks delivered by two workers at once."""

import datetime
import json
import os
import signal
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from kiosk.events.models import EventDelivery, WebhookEndpoint
from kiosk.events.services import emit
from kiosk.jobs import enqueue
from kiosk.models import WorkerHeartbeat
from kiosk.worker import run_pending
from orders.models import Category, Order, Product, Terminal
from tests import worker_tasks
from tests.conftest import client_for, make_user, new_key, place, requires_mysql, store_named
from tests.subscriber import Subscriber


def wait_for(predicate, *, timeout=30.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def task_row(result) -> DBTaskResult:
    return DBTaskResult.objects.get(pk=result.id)


# --- In this process ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failing_task_is_retried_with_backoff_then_dead_with_its_error():
    result = enqueue(worker_tasks.always_fails, "boom")
    for _ in range(40):
        run_pending()
        if task_row(result).status == TaskResultStatus.FAILED:
            break
        time.sleep(0.05)
    row = task_row(result)
    assert row.status == TaskResultStatus.FAILED  # dead: the admin lists it, with its traceback
    assert len(row.worker_ids) == 3 and "boom fails on purpose" in row.traceback

    from kiosk.worker import run_again

    assert run_again([row.pk]) == 1
    assert task_row(result).status == TaskResultStatus.READY


@pytest.mark.django_db
def test_worker_status_fails_without_a_live_worker():
    with pytest.raises(CommandError, match="no worker is alive"):
        call_command("worker_status")
    WorkerHeartbeat.objects.create(
        worker_id="w1", hostname="h", pid=1, started_at=timezone.now(), seen_at=timezone.now()
    )
    call_command("worker_status")  # alive now


# --- Worker processes -----------------------------------------------------------------------------

transactional = pytest.mark.django_db(transaction=True)


@transactional
def test_sigterm_lets_the_task_in_hand_finish(workers):
    result = enqueue(worker_tasks.slow_marker, "graceful", 1.5)
    worker = workers.start("--no-schedule")
    wait_for(lambda: task_row(result).status == TaskResultStatus.RUNNING)
    assert WorkerHeartbeat.objects.count() == 1
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert task_row(result).status == TaskResultStatus.SUCCESSFUL
    assert Category.objects.filter(slug="graceful").exists()
    assert WorkerHeartbeat.objects.count() == 0  # a clean stop leaves no heartbeat behind


@transactional
def test_a_worker_killed_mid_task_loses_nothing(workers):
    result = enqueue(worker_tasks.slow_marker, "killed", 2.0)
    first = workers.start("--no-schedule")
    wait_for(lambda: task_row(result).status == TaskResultStatus.RUNNING)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert not Category.objects.filter(slug="killed").exists()
    workers.start("--no-schedule")  # after WORKER_STALE_SECONDS it takes the abandoned task back
    wait_for(lambda: task_row(result).status == TaskResultStatus.SUCCESSFUL, timeout=40)
    assert Category.objects.filter(slug="killed").count() == 1
    assert len(task_row(result).worker_ids) == 2


@transactional
def test_abandoned_orders_are_cancelled_on_schedule_and_their_stock_released(workers, settings, migration_data):
    user = make_user("kiosk-s", "kiosk")
    Terminal.objects.create(name="T", store=store_named("Loja 1"), external_pos_id="POSS", user=user)
    drinks = Category.objects.create(name="Bebida", slug="bebida")
    juice = Product.objects.create(category=drinks, name="Suco", price="9.90", stock=5)
    order = place(client_for(user), [{"product_id": juice.pk, "quantity": 2}]).json()
    Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - datetime.timedelta(hours=2))
    juice.refresh_from_db()
    assert juice.stock == 3
    workers.start(SCHEDULE_CANCEL_STALE_SECONDS="1")  # nobody types cancel_stale_orders
    wait_for(lambda: Order.objects.get(pk=order["id"]).status == "cancelled")
    juice.refresh_from_db()
    assert juice.stock == 5


def _orders(count: int) -> list[Order]:
    user = make_user(f"kiosk-{count}", "kiosk")
    Terminal.objects.create(name="Bulk", store=store_named("Loja 1"), external_pos_id=f"BULK{count}", user=user)
    category = Category.objects.create(name=f"C{count}", slug=f"c{count}")
    product = Product.objects.create(category=category, name="X", price="10.00")
    kiosk = client_for(user)
    ids = [place(kiosk, [{"product_id": product.pk, "quantity": 1}], key=new_key()).json()["id"] for _ in range(count)]
    return list(Order.objects.filter(pk__in=ids).select_related("terminal"))


def _emit_more(orders, per_order: int) -> None:
    for order in orders:
        with transaction.atomic():
            for i in range(per_order):
                emit("order.status_changed", order=order, data={"order_id": str(order.pk), "n": i})


def _undelivered_state() -> str:
    """What a stalled delivery run is waiting on, for the failure message."""
    rows = EventDelivery.objects.exclude(status="delivered").order_by("order_id", "sequence")
    lines = [
        f"{row.pk} order={row.order_id} seq={row.sequence} {row.status} attempts={row.attempts} "
        f"next={row.next_attempt_at} lease={row.locked_until}"
        for row in rows[:20]
    ]
    waiting = DBTaskResult.objects.exclude(status__in=[TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED])
    return f"{rows.count()} undelivered, {waiting.count()} task(s) waiting or running:\n" + "\n".join(lines)


@transactional
@requires_mysql
@pytest.mark.timeout(330)  # about 25 s alone; four times that beside the rest of the suite on two busy cores
def test_two_workers_deliver_a_thousand_events_once_each_and_in_sequence(workers, migration_data, record_property):
    subscriber = Subscriber()
    try:
        hook = WebhookEndpoint.objects.create(url=subscriber.url, events=["*"])
        subscriber.secret = hook.secret
        orders = _orders(100)  # 100 order.placed
        _emit_more(orders, 9)  # and 9 more events each: 1,000 events
        assert EventDelivery.objects.count() == 1000
        subscriber.fail_when(lambda env: hash(env["event_id"]) % 10 == 0 and subscriber.requests % 3 == 0)
        started = time.monotonic()
        workers.start("--no-schedule", WEBHOOK_RETRY_BASE_SECONDS="0.05")
        workers.start("--no-schedule", WEBHOOK_RETRY_BASE_SECONDS="0.05")
        try:
            wait_for(lambda: not EventDelivery.objects.exclude(status="delivered").exists(), timeout=300, every=0.5)
        except AssertionError:
            raise AssertionError(_undelivered_state()) from None
        seconds = time.monotonic() - started
        record_property(
            "figures", f"two workers, 1,000 webhook events: all delivered in {seconds:.1f} s ({1000 / seconds:.0f}/s)"
        )
        received = [env for _, env in subscriber.received]
        assert len({env["event_id"] for env in received}) == 1000  # none missing
        assert len(received) == 1000  # none delivered twice
        assert subscriber.overlaps == 0 and subscriber.bad_signatures == 0
        per_order: dict[str, list[int]] = {}
        for env in received:
            per_order.setdefault(env["aggregate"]["id"], []).append(env["sequence"])
        assert all(seqs == list(range(1, 11)) for seqs in per_order.values())  # each order's in sequence
    finally:
        subscriber.close()


@transactional
def test_a_worker_killed_while_delivering_loses_no_event(workers, migration_data):
    subscriber = Subscriber(delay=0.02)
    try:
        hook = WebhookEndpoint.objects.create(url=subscriber.url, events=["*"])
        subscriber.secret = hook.secret
        _emit_more(_orders(20), 4)  # 100 events
        first = workers.start("--no-schedule", WEBHOOK_TIMEOUT="1")
        wait_for(lambda: len(subscriber.received) >= 20)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert EventDelivery.objects.exclude(status="delivered").exists()
        workers.start("--no-schedule", WEBHOOK_TIMEOUT="1")  # takes over the killed worker's tasks and lease
        wait_for(lambda: not EventDelivery.objects.exclude(status="delivered").exists(), timeout=60, every=0.5)
        ids = [env["event_id"] for _, env in subscriber.received]
        assert len(set(ids)) == 100  # all of them, after the restart
        assert len(ids) - len(set(ids)) <= 1  # at least once: the one in flight at the kill may come twice
    finally:
        subscriber.close()


@transactional
def test_worker_status_reads_a_running_workers_heartbeat(workers, capsys):
    workers.start("--no-schedule")
    wait_for(lambda: WorkerHeartbeat.objects.exists())
    call_command("worker_status")
    status = json.loads(capsys.readouterr().out)
    assert status["alive"] == 1 and status["workers"][0]["pid"] > 0


@pytest.mark.django_db
def test_a_task_that_keeps_killing_its_worker_ends_dead_not_queued_for_ever():
    """A task whose worker died under it is run again, but only as often as its retry policy allows: one
    that takes its worker down every time (out of memory) is dead after that, for a person to look at."""
    from kiosk.worker import recover_abandoned

    long_ago = timezone.now() - datetime.timedelta(hours=1)
    once = task_row(enqueue(worker_tasks.slow_marker, "once", 0))
    every_time = task_row(enqueue(worker_tasks.slow_marker, "every-time", 0))  # 3 attempts at most
    DBTaskResult.objects.filter(pk=once.pk).update(status="RUNNING", started_at=long_ago, worker_ids=["gone-1"])
    DBTaskResult.objects.filter(pk=every_time.pk).update(
        status="RUNNING", started_at=long_ago, worker_ids=["gone-1", "gone-2", "gone-3"]
    )
    assert recover_abandoned() == 1
    assert task_row(once).status == TaskResultStatus.READY
    dead = task_row(every_time)
    assert dead.status == TaskResultStatus.FAILED and "stopped without finishing it, 3 time(s)" in dead.traceback


@pytest.mark.django_db
def test_a_sigterm_while_a_failed_task_is_being_rescheduled_waits_for_it(monkeypatch):
    """SIGTERM between a task failing and its retry being written must not exit there (the task would stay
    dead with attempts left): the worker finishes the bookkeeping, then stops."""
    import kiosk.worker as worker_module

    result = enqueue(worker_tasks.always_fails, "sigterm")
    worker = worker_module.Worker(
        queue_names=["*"], interval=0, batch=True, backend_name="default", startup_delay=False, max_tasks=None,
        worker_id="w-sigterm", excluded_queue_names=[], schedule=False,
    )  # fmt: skip
    worker.running = True
    original = worker_module.retry_or_bury

    def signalled_meanwhile(row):
        worker.shutdown(signal.SIGTERM, None)  # would sys.exit(0) here if the task no longer counted as in hand
        return original(row)

    monkeypatch.setattr(worker_module, "retry_or_bury", signalled_meanwhile)
    row = task_row(result)
    row.claim(worker.worker_id)
    worker.run_task(row)
    assert worker.running is False  # it will stop after this task
    assert task_row(result).status == TaskResultStatus.READY  # the retry was written


@pytest.mark.django_db(transaction=True)
def test_a_worker_stopped_in_the_middle_of_a_transaction_still_removes_its_heartbeat(monkeypatch, caplog):
    """SIGTERM exits the worker wherever it is, a claim's transaction included: its heartbeat row still goes,
    so `worker_status` and /readyz do not count a stopped worker as alive until the row goes stale."""
    from django.db import connection
    from django_tasks_db.management.commands.db_worker import Worker as LibraryWorker

    import kiosk.worker as worker_module

    def stopped_mid_transaction(self):
        connection.ensure_connection()
        connection.connection.cursor().execute("BEGIN")  # opened under Django's feet, never closed
        raise SystemExit(0)

    monkeypatch.setattr(LibraryWorker, "run", stopped_mid_transaction)
    worker = worker_module.Worker(
        queue_names=["*"], interval=0, batch=True, backend_name="default", startup_delay=False, max_tasks=None,
        worker_id="w-stopped", excluded_queue_names=[], schedule=False,
    )  # fmt: skip
    with pytest.raises(SystemExit):
        worker.run()
    assert not WorkerHeartbeat.objects.filter(worker_id="w-stopped").exists()
    assert "could not remove this worker's heartbeat" not in caplog.text


@pytest.mark.django_db
def test_worker_status_local_counts_only_this_machines_workers():
    import socket

    WorkerHeartbeat.objects.create(
        worker_id="elsewhere", hostname="another-pod", pid=1, started_at=timezone.now(), seen_at=timezone.now()
    )
    call_command("worker_status")  # a worker is alive somewhere
    with pytest.raises(CommandError, match=r"no worker on .* is alive"):
        call_command("worker_status", "--local")  # but not in this pod: its liveness probe fails
    WorkerHeartbeat.objects.create(
        worker_id="here", hostname=socket.gethostname(), pid=2, started_at=timezone.now(), seen_at=timezone.now()
    )
    call_command("worker_status", "--local")
