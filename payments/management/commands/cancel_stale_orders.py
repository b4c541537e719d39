from django.core.management.base import BaseCommand

from payments.services import orders_cancel_stale


class Command(BaseCommand):
    help = "Cancel orders unpaid for longer than ORDER_PAYMENT_TIMEOUT_MINUTES, releasing their stock and cancelling their QR at Mercado Pago. Cron-safe."

    def handle(self, *args, **options):
        cancelled = orders_cancel_stale()
        self.stdout.write(f"Cancelled {cancelled} stale unpaid order(s).")
