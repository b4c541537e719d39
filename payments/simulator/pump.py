"""The simulator's clock when nobody drives it (make run, gunicorn, the live-server test).

`wake()` starts, at most once per process, a daemon thread that settles the refunds that are due
(engine.confirm_refunds) and then sends the notifications that are due (notify.send_due): a round every
INTERVAL seconds while anything is queued or processing, and its database connection closed after every
round. With nothing waiting it makes no queries: it waits for the next `wake()` and stops by itself after
IDLE_EXIT seconds of that; the next `wake()` starts it again.

Everything it works from is in the database, so a restarted server catches up as soon as something wakes
its pump, and the simulator wakes it on every API call and after every commit that queued a notification or
created a refund. Several processes (gunicorn workers) each have a pump; claiming a notification is atomic
(notify.claim), so none is sent twice.

With settings.MERCADOPAGO_SIMULATOR_AUTOPUMP off, `wake()` does nothing: time only passes when the caller
says so (the tests' `mercadopago` fixture: `deliver()`, `confirm_refunds()`).
"""

import logging
import os
import threading
import time

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

INTERVAL = 0.2  # seconds between rounds while something is waiting
IDLE_EXIT = 30.0  # seconds with nothing waiting (and no wake()) before the thread stops

_lock = threading.Lock()
_thread: threading.Thread | None = None
_nudge = threading.Event()  # set by wake(): something may have become due, look again
_stop = threading.Event()


def wake() -> None:
    """Make sure this process's pump runs (no-op when MERCADOPAGO_SIMULATOR_AUTOPUMP is off). Cheap: call it
    whenever something may have become due."""
    global _thread
    if not settings.MERCADOPAGO_SIMULATOR_AUTOPUMP:
        return
    with _lock:
        _nudge.set()
        if _thread is None or not _thread.is_alive():
            _stop.clear()
            _thread = threading.Thread(target=_run, name="mp-simulator-pump", daemon=True)
            _thread.start()


def running() -> bool:
    """Whether this process's pump thread is alive."""
    thread = _thread
    return thread is not None and thread.is_alive()


def stop(timeout: float = 5.0) -> None:
    """Stop this process's pump thread and wait for it (tests; a server just lets the daemon thread die)."""
    thread = _thread
    _stop.set()
    _nudge.set()
    if thread is not None:
        thread.join(timeout)


def run_once() -> bool:
    """One round: settle the due refunds, send the due notifications. Returns whether anything is still
    waiting (a queued notification or a processing refund). Never raises."""
    from payments.simulator import engine, notify

    try:
        engine.confirm_refunds()
    except Exception:
        logger.exception("mp-simulator: could not settle the due refunds")
    notify.send_due()
    try:
        return notify.pending() or engine.refunds_pending()
    except Exception:
        logger.exception("mp-simulator: could not look at the queue")
        return True


def _run() -> None:
    global _thread
    idle_since = time.monotonic()
    try:
        while not _stop.is_set():
            _nudge.clear()
            try:
                busy = run_once()
            finally:
                connection.close()
            if busy:
                idle_since = time.monotonic()
                _stop.wait(INTERVAL)
                continue
            # Nothing waiting: whatever comes next in this process wakes us; no need to poll the database.
            remaining = IDLE_EXIT - (time.monotonic() - idle_since)
            if remaining > 0 and _nudge.wait(remaining):
                _stop.wait(INTERVAL)
                continue
            with _lock:
                if not _nudge.is_set():  # nobody woke us since the last round looked: stop
                    _thread = None
                    return
    finally:
        with _lock:
            if _thread is threading.current_thread():
                _thread = None
        connection.close()


def _after_fork() -> None:
    """A forked child (gunicorn's workers) has no pump thread, whatever its parent had."""
    global _thread, _lock, _nudge, _stop
    _thread, _lock, _nudge, _stop = None, threading.Lock(), threading.Event(), threading.Event()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
