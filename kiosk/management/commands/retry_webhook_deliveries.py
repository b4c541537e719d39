from django.core.management.base import BaseCommand

from kiosk.events.delivery import deliveries_sweep


class Command(BaseCommand):
    help = (
        "Queue again the outgoing webhook deliveries whose task is overdue (lost, or no worker was running): "
        "the first undelivered event of each order per endpoint. A worker sends them. Safe to run from cron, "
        "from several machines at once (a delivery is claimed before it is sent)."
    )

    def handle(self, *args, **options):
        queued = deliveries_sweep()
        self.stdout.write(f"Queued {queued} overdue webhook delivery(ies).")
