from django.core.management.base import BaseCommand

from payments.services.checkout import orders_cancel_stale


class Command(BaseCommand):
    help = (
        "Cancel unpaid orders that can no longer be paid (older than ORDER_PAYMENT_TIMEOUT_MINUTES and no QR "
        "still valid, MERCADOPAGO_QR_GRACE_SECONDS included), releasing their stock. Safe to run every minute, "
        "from several machines at once."
    )

    def handle(self, *args, **options):
        cancelled = orders_cancel_stale()
        self.stdout.write(f"Cancelled {cancelled} stale unpaid order(s).")
