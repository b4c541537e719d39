import json
import socket

from django.core.management.base import BaseCommand, CommandError

from kiosk.worker import worker_status


class Command(BaseCommand):
    help = (
        "Print the workers' heartbeats and the task queue (JSON); exit 1 when no worker has beaten within "
        "WORKER_STALE_SECONDS. With --local, only the workers of this machine (or pod) count: the worker "
        "container's liveness probe. Fit for a monitoring check too."
    )

    def add_arguments(self, parser):
        parser.add_argument("--local", action="store_true", help="Only the workers on this host name (this pod) count.")

    def handle(self, *args, local: bool, **options):
        hostname = socket.gethostname()[:255] if local else None
        status = worker_status(hostname=hostname)
        self.stdout.write(json.dumps(status, indent=2, default=str))
        if not status["alive"]:
            where = f"on {hostname} " if hostname else ""
            raise CommandError(f"no worker {where}is alive (no heartbeat within WORKER_STALE_SECONDS)")
