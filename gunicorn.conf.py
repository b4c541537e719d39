"""gunicorn's settings for the web process (`gunicorn kiosk.wsgi -c gunicorn.conf.py`; the image's default).

Sized for 2 cores by default and set from the environment. Every timeout is under Mercado Pago's 22 s, so a
notification is answered (or the worker restarted) before Mercado Pago gives up on it. The access log is one
JSON object per line with the path and never the query string: `/api/v1/customers/?cpf=...` must not leave a
CPF in the logs.
"""

import json
import os
import shutil
import tempfile
import time

from gunicorn.glogging import Logger


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# In a container: every interface of the pod (the Service and the probes reach it there).
bind = f"{os.environ.get('GUNICORN_BIND', '0.0.0.0')}:{_int('PORT', 8000)}"  # noqa: S104  # nosec  # B104 (bare: PyCQA/bandit#1204)
# Threads serve the kiosks' polling while a request waits on Mercado Pago; processes use the 2 cores.
workers = _int("GUNICORN_WORKERS", 3)
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread"
# A request may take checkout's calls to Mercado Pago (MERCADOPAGO_TIMEOUT 4 s, 2 retries): well under 20 s.
timeout = _int("GUNICORN_TIMEOUT", 20)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)  # SIGTERM: requests in hand finish first
keepalive = _int("GUNICORN_KEEPALIVE", 5)
max_requests = _int("GUNICORN_MAX_REQUESTS", 5000)  # recycle workers now and then, staggered
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 500)
# The TLS proxy's address sets X-Forwarded-* (BEHIND_TLS_PROXY decides whether Django trusts them).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The workers' heartbeat files: in memory (a read-only root filesystem has no writable /tmp).
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's own heartbeat files, not data  # nosec B108
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", _SHM if os.path.isdir(_SHM) else None)

# /metrics: each worker process writes its counters to files here and a scrape adds them up. In memory too;
# emptied when gunicorn starts, and a dead worker's gauges are dropped.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(worker_tmp_dir or tempfile.gettempdir(), "kiosk-prometheus")
)


def on_starting(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class JsonAccessLogger(Logger):
    """gunicorn's logger with an access line of JSON: no query string, no CPF or e-mail in what is kept."""

    def access(self, resp, req, environ, request_time):
        if not self.cfg.accesslog:
            return
        from kiosk.logging import mask_pii  # after Django's settings are loaded by the app

        headers = dict(resp.headers or [])
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "level": "info",
            "logger": "gunicorn.access",
            "message": f"{req.method} {req.path} {resp.status_code}",
            "method": req.method,
            "path": mask_pii(req.path),  # the path only: the query string is never logged
            "route": environ.get("kiosk.route", ""),  # the URL pattern Django matched
            "status": resp.status_code,
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "bytes": getattr(resp, "sent", None),
            "request_id": headers.get("X-Request-ID", ""),
            "remote_addr": environ.get("REMOTE_ADDR", ""),
            "user_agent": mask_pii(environ.get("HTTP_USER_AGENT", ""))[:200],
        }
        try:
            self.access_log.info(json.dumps(line, ensure_ascii=False))
        except Exception:  # a log line must never fail a request
            self.exception("could not write the access log line")


logger_class = JsonAccessLogger
