from django.core.management.base import BaseCommand

from payments.services.reconcile import payments_reconcile


class Command(BaseCommand):
    help = (
        "Ask Mercado Pago about payments still open on our side (a notification may never have come) and "
        "apply the answers; retry refunds whose outcome is unknown. Safe to run every minute."
    )

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=200, help="At most this many payments per run.")

    def handle(self, *args, limit, **options):
        checked, refunds = payments_reconcile(limit=limit)
        self.stdout.write(f"Checked {checked} payment(s) with Mercado Pago; retried {refunds} refund(s).")
