from django.core.management.base import BaseCommand

from orders.services import orders_cancel_stale


class Command(BaseCommand):
    help = "Cancel orders unpaid for longer than ORDER_PAYMENT_TIMEOUT_MINUTES, releasing their stock. Cron-safe."

    def handle(self, *args, **options):
        cancelled = orders_cancel_stale()
        self.stdout.write(f"Cancelled {cancelled} stale unpaid order(s).")
