"""`make soak`: the benchmark's journey mix for SOAK_SECONDS (600), with the memory of the worker and of the web
workers sampled every SOAK_SAMPLE_SECONDS; fails on any error or on memory that grows.

It reuses scripts/bench.py (the same database, production settings, gunicorn, worker and kiosk journeys):
- kiosks: BENCH_JOURNEY_CLIENTS (8) processes, each placing an order, checking it out, paying it on the
  simulator and polling until it is received, again and again;
- screens, beside them in this process: the kitchen display polling its queue (If-None-Match) and moving the
  oldest orders of each column on, to completed; the pickup board and the menu re-read as the screens do;
- memory: the RSS of the worker process and the sum over gunicorn's workers, every SOAK_SAMPLE_SECONDS (5;
  less for a short run). gunicorn's recycling (GUNICORN_MAX_REQUESTS) is off, so a leak cannot hide behind a
  restart, and a web worker that restarts all the same is an error.
Passes when every request got the answer expected (2xx, or 304 to If-None-Match), every journey's order was
received, nothing was paid or applied twice, and the median RSS of the last minute is within SOAK_GROWTH_PCT
(10 %) or SOAK_GROWTH_MB (20 MB) of the second minute's, whichever is larger (the first minute is warm-up; a
run shorter than 6 minutes compares its second and last sixths). Prints the figures docs/benchmarks.md keeps.
"""

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

os.environ.setdefault("BENCH_PORT", os.environ.get("SOAK_PORT", "8766"))  # beside a running `make bench`
os.environ.setdefault("BENCH_BACKLOG", os.environ.get("SOAK_BACKLOG", "100"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # after the port is chosen

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SAMPLE_SECONDS = float(os.environ.get("SOAK_SAMPLE_SECONDS", max(1.0, min(5.0, SECONDS / 30))))
GROWTH_PCT = float(os.environ.get("SOAK_GROWTH_PCT", "10"))
GROWTH_MB = float(os.environ.get("SOAK_GROWTH_MB", "20"))
WINDOW = min(60.0, SECONDS / 6)  # the "minute" compared: the second one against the last one


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Sampler(threading.Thread):
    """(seconds since the start, worker MB, web workers' MB) every SAMPLE_SECONDS; the web workers' pids seen."""

    def __init__(self, app: bench.App):
        super().__init__(daemon=True)
        self.app, self.samples, self.web_pids, self.stop = app, [], set(), threading.Event()
        self.started = time.monotonic()

    def run(self):
        while not self.stop.is_set():
            web = self.app.worker_rss_by_pid()
            self.web_pids |= set(web)
            worker = rss_mb(self.app.worker.pid)
            self.samples.append((time.monotonic() - self.started, worker, sum(web.values())))
            self.stop.wait(SAMPLE_SECONDS)


class Screens(threading.Thread):
    """The kitchen display, the pickup board and the menu, polling as the screens do; counts answers."""

    KITCHEN_EVERY, BOARD_EVERY, MENU_EVERY = 1.0, 2.0, 5.0
    NEXT = {"received": "in_preparation", "in_preparation": "ready", "ready": "completed"}

    def __init__(self, kiosk: dict, kitchen: dict):
        super().__init__(daemon=True)
        self.kiosk, self.kitchen, self.stop = kiosk, kitchen, threading.Event()
        self.counts = {"kitchen polls": 0, "kitchen 304": 0, "orders moved": 0, "board polls": 0, "menu reads": 0}
        self.errors: list[str] = []
        self.etags: dict[str, str] = {}

    def get(self, session, path: str, headers: dict) -> requests.Response | None:
        etag = self.etags.get(path)
        answer = session.get(
            bench.BASE + path, headers={**headers, **({"If-None-Match": etag} if etag else {})}, timeout=10
        )
        if answer.status_code not in (200, 304):
            self.errors.append(f"GET {path}: {answer.status_code} {answer.text[:200]}")
            return None
        if answer.headers.get("ETag"):
            self.etags[path] = answer.headers["ETag"]
        return answer

    def kitchen_round(self, session):
        answer = self.get(session, "/api/v1/kitchen/orders/", self.kitchen)
        self.counts["kitchen polls"] += 1
        if answer is None:
            return
        if answer.status_code == 304:
            self.counts["kitchen 304"] += 1
            return
        cards = answer.json()
        for status in ("ready", "in_preparation", "received"):  # the oldest 3 of each column, one step on
            for card in [c for c in cards if c["status"] == status][:3]:
                moved = session.post(
                    f"{bench.BASE}/api/v1/kitchen/orders/{card['id']}/status/",
                    json={"status": self.NEXT[status]},
                    headers=self.kitchen,
                    timeout=10,
                )
                if moved.status_code != 200:
                    self.errors.append(f"kitchen {card['number']} to {self.NEXT[status]}: {moved.status_code}")
                else:
                    self.counts["orders moved"] += 1

    def run(self):
        session = requests.Session()
        due = {"kitchen": 0.0, "board": 0.0, "menu": 0.0}
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                if now >= due["kitchen"]:
                    due["kitchen"] = now + self.KITCHEN_EVERY
                    self.kitchen_round(session)
                if now >= due["board"]:
                    due["board"] = now + self.BOARD_EVERY
                    self.get(session, "/api/v1/pickup-board/?store=loja-centro", {})
                    self.counts["board polls"] += 1
                if now >= due["menu"]:
                    due["menu"] = now + self.MENU_EVERY
                    self.get(session, "/api/v1/products/", self.kiosk)
                    self.counts["menu reads"] += 1
            except requests.RequestException as error:
                self.errors.append(f"{type(error).__name__}: {error}"[:300])
            self.stop.wait(0.1)


def window_median(samples, start: float, end: float, index: int) -> float:
    values = [s[index] for s in samples if start <= s[0] < end and s[index] is not None]
    return statistics.median(values) if values else float("nan")


def memory_verdicts(samples) -> list[tuple[str, float, float, float, float, float, bool]]:
    """Per process kind: (name, first sample, second window's median, last window's, growth, allowed, flat?)."""
    end = max(s[0] for s in samples)
    rows = []
    for index, name in ((1, "worker (run_worker)"), (2, "web workers (sum)")):
        first = samples[0][index] or float("nan")
        second = window_median(samples, WINDOW, 2 * WINDOW, index)
        last = window_median(samples, end - WINDOW, end + 1, index)
        allowed = max(second * GROWTH_PCT / 100, GROWTH_MB)
        rows.append((name, first, second, last, last - second, allowed, last - second <= allowed))
    return rows


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kiosk-soak-"))
    env, database = bench.prepare(
        workdir, database="kiosk_soak", variable="SOAK_DATABASE_URL", GUNICORN_MAX_REQUESTS="0"
    )
    app = bench.App(env, workdir)
    started = time.perf_counter()
    try:
        app.start()
        return soak(app, database, env)
    finally:
        app.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"(soak took {time.perf_counter() - started:.0f} s)")


def soak(app: bench.App, database: str, env: dict) -> int:
    session = requests.Session()

    def token(user):
        return session.post(
            f"{bench.BASE}/api/v1/auth/token/", json={"username": user, "password": user}, timeout=10
        ).json()["access"]

    kiosk_token = token("kiosk1")
    kiosk, kitchen = {"Authorization": f"Bearer {kiosk_token}"}, {"Authorization": f"Bearer {token('kitchen1')}"}
    _, body = bench.journey_body(session, kiosk)
    print(
        f"kiosk back end soak: {SECONDS:g} s, {database}, gunicorn {env['GUNICORN_WORKERS']} workers x "
        f"{env['GUNICORN_THREADS']} threads (no recycling), {bench.JOURNEY_CLIENTS} kiosks + kitchen display, "
        f"pickup board and menu polls, RSS every {SAMPLE_SECONDS:g} s, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}",
        flush=True,
    )
    sampler, screens = Sampler(app), Screens(kiosk, kitchen)
    sampler.start()
    screens.start()
    figures, orders = bench.journeys(kiosk_token, body, seconds=SECONDS)
    screens.stop.set()
    sampler.stop.set()
    screens.join(timeout=15)
    sampler.join(timeout=15)

    problems = bench.integrity_problems(orders)
    samples = sampler.samples
    print(
        f"journeys: {figures['requests']} received of {len(orders)} placed ({figures['rps']:.1f}/s), "
        f"p50 {figures['p50'] / 1e6:.2f} s, p95 {figures['p95'] / 1e6:.2f} s, p99 {figures['p99'] / 1e6:.2f} s; "
        f"errors {figures['errors']}"
    )
    for sample in figures["error_samples"]:
        print(f"  journey error: {sample}")
    counts = ", ".join(f"{name} {count}" for name, count in screens.counts.items())
    print(f"screens: {counts}; errors {len(screens.errors)}")
    for error in screens.errors[:5]:
        print(f"  screen error: {error}")
    restarts = len(sampler.web_pids) - int(env["GUNICORN_WORKERS"])
    print(f"web worker processes seen: {len(sampler.web_pids)} (restarts: {max(restarts, 0)})")

    step = max(1, round(60 / SAMPLE_SECONDS)) if SECONDS >= 360 else max(1, round(WINDOW / SAMPLE_SECONDS))
    timeline = samples[::step]
    print(f"RSS MB every {step * SAMPLE_SECONDS:g} s, worker: " + " ".join(f"{s[1]:.0f}" for s in timeline))
    print(f"RSS MB every {step * SAMPLE_SECONDS:g} s, web workers: " + " ".join(f"{s[2]:.0f}" for s in timeline))
    print(
        f"{'memory (RSS MB)':<22} {'first':>7} {'2nd window':>11} {'last window':>12} {'growth':>8} {'allowed':>8}"
        f"  (windows of {WINDOW:g} s; {len(samples)} samples)"
    )
    verdicts = memory_verdicts(samples)
    for name, first, second, last, growth, allowed, flat in verdicts:
        print(
            f"{name:<22} {first:7.1f} {second:11.1f} {last:12.1f} {growth:+8.1f} {allowed:8.1f}  "
            f"{'flat' if flat else 'GREW'}"
        )
    print(
        "integrity: "
        + ("ok (no order paid twice, no notification applied twice, every journey received)" if not problems else "")
        + "; ".join(problems)
    )
    failed = (
        problems
        or figures["errors"]
        or screens.errors
        or restarts > 0
        or not all(v[-1] for v in verdicts)
        or figures["requests"] == 0
    )
    print(f"soak: {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
