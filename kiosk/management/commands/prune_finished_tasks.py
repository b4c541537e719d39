from django.core.management.base import BaseCommand

from kiosk.tasks import finished_tasks_prune


class Command(BaseCommand):
    help = (
        "Delete background tasks that succeeded more than TASKS_KEEP_SUCCEEDED_DAYS ago. Dead (failed) tasks "
        "stay until someone runs them again from the admin. Safe to run from cron."
    )

    def handle(self, *args, **options):
        deleted = finished_tasks_prune()
        self.stdout.write(f"Deleted {deleted} finished task(s).")
