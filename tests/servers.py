"""A real gunicorn for the tests that need the production shape (access log, worker processes)."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

BASE = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def production_gunicorn(tmp_path: Path, **env: str):
    """gunicorn with the project's gunicorn.conf.py and production settings (DEBUG off, the simulator, a
    throw-away SQLite file) on a free port, answering /healthz; yields its URL. Its output is in
    tmp_path / "gunicorn.log" once the block has ended and the server has stopped."""
    port = free_port()
    settings = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "x" * 50,
        "MERCADOPAGO_SIMULATOR": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GUNICORN_BIND": "127.0.0.1",
        "PORT": str(port),
        "GUNICORN_WORKERS": "1",
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
        **env,
    }
    settings.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py makes its own
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "gunicorn.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "kiosk.wsgi", "-c", "gunicorn.conf.py"],
            cwd=BASE,
            env=settings,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for _ in range(150):
                try:
                    requests.get(f"{url}/healthz", timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.1)
            yield url
            time.sleep(0.3)  # the last access lines reach the log
        finally:
            server.terminate()
            server.wait(timeout=20)
