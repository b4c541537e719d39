import json

from django.core.management.base import BaseCommand, CommandError

from kiosk.worker import worker_status


class Command(BaseCommand):
    help = (
        "Print the workers' heartbeats and the task queue (JSON); exit 1 when no worker has beaten within "
        "WORKER_STALE_SECONDS. Fit for a liveness probe of the worker or a monitoring check."
    )

    def handle(self, *args, **options):
        status = worker_status()
        self.stdout.write(json.dumps(status, indent=2, default=str))
        if not status["alive"]:
            raise CommandError("no worker is alive (no heartbeat within WORKER_STALE_SECONDS)")
