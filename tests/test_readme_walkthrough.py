"""The walk-throughs a newcomer pastes into a terminal run as written: the README's short one and the full one
(docs/walkthrough.md), each against a fresh server started as `make run` starts it (migrate, seed_demo,
runserver and the worker on SQLite, payments through the Mercado Pago simulator). One difference: the
simulator's notifications leave 0.3 s after the payment instead of 1 s; the walk-throughs wait for them (as a
kiosk polls) rather than sleep, so only the test's duration changes. Refunds keep their 3 s.

Every `sh` block of the README's "Walk-through" section and of docs/walkthrough.md is pasted, in order, into one
bash with `set -euo pipefail`: a command that fails stops it. Comment lines right under a command are what it
prints and are checked, in order, against what it printed this time: `...` stands for anything (ids, tokens,
times), a remark after two spaces in brackets is prose, and a comment line indented past `# ` continues the
line above (one long line, wrapped). The server must not answer any request with a 500.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.servers import free_port

BASE = Path(__file__).resolve().parent.parent
MAKE_RUN_URL = "http://127.0.0.1:8000"  # where the walk-throughs say `make run` serves
# (page, the heading whose section holds the walk-through; None: the whole page)
WALKTHROUGHS = [("README.md", "## Walk-through"), ("docs/walkthrough.md", None)]
REMARK = re.compile(r"\s{2,}\(.*\)$")


@dataclass
class Step:
    """Commands pasted together and the lines they print (as the page shows them)."""

    code: list[str]
    expected: list[str]
    line: int  # where the commands start on the page

    def unmatched(self, printed: list[str], url: str) -> list[str]:
        """The expected lines not found, in order, among the printed ones (`...` matching anything)."""
        missing, at = [], 0
        for line in self.expected:
            pattern = re.compile(".*?".join(re.escape(part) for part in line.replace(MAKE_RUN_URL, url).split("...")))
            found = next((i for i in range(at, len(printed)) if pattern.fullmatch(printed[i])), None)
            if found is None:
                missing.append(line)
            else:
                at = found + 1
        return missing


def section(page: str, heading: str | None) -> tuple[list[str], int]:
    """The lines of `heading`'s section (up to the next heading of its level or above) and its first line's number."""
    lines = (BASE / page).read_text().splitlines()
    if heading is None:
        return lines, 1
    level = heading.split(" ", 1)[0]
    start = lines.index(heading)
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if re.match(rf"#{{1,{len(level)}}} ", lines[i]) and not in_code(lines, i)
        ),
        len(lines),
    )
    return lines[start:end], start + 1


def in_code(lines: list[str], index: int) -> bool:
    return sum(line.startswith("```") for line in lines[:index]) % 2 == 1


def steps_of(page: str, heading: str | None) -> list[Step]:
    lines, first = section(page, heading)
    steps: list[Step] = []
    block = None
    for number, line in enumerate(lines, first):
        if block is None:
            block = False if line.strip() == "```sh" else None  # False: no command in the block yet
            continue
        if line.startswith("```"):
            block = None
            continue
        comment = re.match(r"^# ?(.*)$", line)
        if comment is None:
            if not steps or steps[-1].expected:
                steps.append(Step(code=[], expected=[], line=number))
            steps[-1].code.append(line)
            block = True
        elif block:  # a comment above a block's first command is its title, not output
            text = REMARK.sub("", comment.group(1).rstrip())
            if text[:1].isspace() and steps[-1].expected:
                steps[-1].expected[-1] += text.strip()
            elif text:
                steps[-1].expected.append(text)
    return steps


def script(steps: list[Step], url: str, files: Path, out: Path) -> str:
    """One bash script: each step's output to out/<n>; the first failing command stops it, saying which."""
    parts = [
        "set -euo pipefail",
        "trap 'echo \"failed (exit $?) in step $STEP: $BASH_COMMAND\" >&2' ERR",
    ]
    for n, step in enumerate(steps):
        code = "\n".join(step.code).replace(MAKE_RUN_URL, url).replace("/tmp/", f"{files}/")
        parts.append(f"STEP={n}\n{{\n{code}\n}} > {out}/{n}")
    return "\n".join(parts) + "\n"


class MakeRun:
    """What `make run` starts (runserver and the worker, as the Procfile says) on a copy of a seeded database."""

    def __init__(self, seeded: Path, workdir: Path):
        self.workdir = workdir
        workdir.mkdir()
        shutil.copy(seeded, workdir / "db.sqlite3")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = make_run_env(workdir / "db.sqlite3", SITE_URL=self.url)
        self.log = (workdir / "server.log").open("w")
        python = sys.executable
        self.processes = [
            subprocess.Popen(
                [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"],
                cwd=BASE,
                env=self.env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [python, "manage.py", "run_worker", "--no-reload", "--interval", "0.2"],
                cwd=BASE,
                env=self.env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            ),
        ]

    def wait_ready(self):
        for _ in range(300):
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server did not start:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.workdir / "server.log").read_text(errors="replace")

    def stop(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


def make_run_env(database: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DEBUG": "true",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "DATABASE_URL": f"sqlite:///{database}",
        # make run's values (notifications sooner: see above), whatever this checkout's .env says
        "MERCADOPAGO_ACCESS_TOKEN": "",
        "MERCADOPAGO_SIMULATOR_NOTIFY_DELAY": "0.3",
        "MERCADOPAGO_SIMULATOR_REFUND_DELAY": "3",
        "DJANGO_SETTINGS_MODULE": "tests.walkthrough_settings",
        **extra,
    }
    for name in ("CACHE_URL", "PROMETHEUS_MULTIPROC_DIR", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    return env


def walk(page: str, heading: str | None, seeded: Path, workdir: Path) -> list[str]:
    """Runs a page's walk-through on its own fresh server; answers what went wrong (nothing: [])."""
    steps = steps_of(page, heading)
    assert steps, f"no sh blocks in {page} {heading or ''}"
    server = MakeRun(seeded, workdir)
    files, out = workdir / "files", workdir / "out"
    files.mkdir()
    out.mkdir()
    try:
        server.wait_ready()
        done = subprocess.run(
            ["bash", "-c", script(steps, server.url, files, out)],
            cwd=BASE,
            env={**server.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        log = server.output()  # before the stop: only what the walk-through caused
    finally:
        server.stop()
    problems = []
    for n, step in enumerate(steps):
        result = out / str(n)
        if not result.exists():
            break
        printed = [line.rstrip("\r\n ") for line in result.read_text().splitlines()]
        for missing in step.unmatched(printed, server.url):
            problems.append(f"{page}:{step.line}: expected a line like {missing!r}; printed:\n" + "\n".join(printed))
    if done.returncode:
        problems.append(f"{page}: the walk-through stopped: {done.stderr.strip()[-2000:]}")
    errors = [line for line in log.splitlines() if re.search(r'" 5\d\d \d+$|Traceback', line)]
    if errors:
        problems.append(f"{page}: the server answered 5xx or crashed:\n" + "\n".join(errors[:20]))
    return problems


def stores_day():
    """Today where the demo stores are (seed_demo: America/Sao_Paulo): their pickup numbers' day."""
    return datetime.now(ZoneInfo("America/Sao_Paulo")).date()


def test_step_parsing_reads_expected_output_under_each_command(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(
        "## Walk-through\n\n```sh\n# a title\nA=1\necho $A\n# 1      (a remark)\necho '{\"a\":'\n"
        "# not a continuation\n```\n\n```sh\n# another title\necho 'x y'\n# x\n#   y\n```\n\n```json\n{}\n```\n\n"
        "## Next\n\n```sh\necho no\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "BASE", tmp_path)
    steps = steps_of("page.md", "## Walk-through")
    assert [(s.code, s.expected) for s in steps] == [
        (["A=1", "echo $A"], ["1"]),
        (["echo '{\"a\":'"], ["not a continuation"]),
        (["echo 'x y'"], ["xy"]),
    ]
    step = Step(["x"], ["HTTP 201", '{"id":"...","n":1}', "done"], 1)
    assert step.unmatched(["HTTP 201", "Date: today", '{"id":"9f","n":1}', "done"], "") == []
    assert step.unmatched(['{"id":"9f","n":2}', "HTTP 201", "done"], "") == ['{"id":"...","n":1}']
    assert step.unmatched(["done", "HTTP 201", '{"id":"9f","n":1}'], "") == ["done"]  # in order


@pytest.mark.timeout(300)  # 38 s on the shared 2-core machine (load 3); more while the rest of the suite runs
def test_the_walkthroughs_run_as_written(tmp_path):
    missing = [tool for tool in ("curl", "jq", "bash") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the walk-throughs need {' and '.join(missing)} (apt-get install {' '.join(missing)})")
    seeded = tmp_path / "seeded.sqlite3"
    env = make_run_env(seeded)
    # make run's migrate and seed_demo, in one process (one start-up less)
    setup = "import django; django.setup(); from django.core.management import call_command as c; "
    setup += "c('migrate', interactive=False, verbosity=0); c('seed_demo')"
    subprocess.run([sys.executable, "-c", setup], cwd=BASE, env=env, check=True, capture_output=True)

    def run(page: str, heading: str | None) -> list[str]:
        day = stores_day()
        problems = walk(page, heading, seeded, tmp_path / page.replace("/", "-"))
        if problems and stores_day() != day:  # pickup numbers restarted at 1 at the stores' midnight: again
            problems = walk(page, heading, seeded, tmp_path / f"{page.replace('/', '-')}-again")
        return problems

    # Both at once: they mostly wait (on the simulator's clock), each on its own server and database.
    with ThreadPoolExecutor(len(WALKTHROUGHS)) as pool:
        problems = [problem for result in pool.map(lambda w: run(*w), WALKTHROUGHS) for problem in result]
    assert problems == [], "\n\n".join(problems)
