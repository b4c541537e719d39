from django.core.management.base import BaseCommand

from payments.management.arguments import bounded_int
from payments.services.reconcile import payments_reconcile


class Command(BaseCommand):
    help = (
        "Ask Mercado Pago about payments still open on our side (a notification may never have come) and "
        "apply the answers; retry refunds whose outcome is unknown. Safe to run every minute."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit", type=bounded_int(1, 10_000), default=200, help="1 to 10000: at most this many payments per run."
        )

    def handle(self, *args, limit, **options):
        checked, refunds = payments_reconcile(limit=limit)
        self.stdout.write(f"Checked {checked} payment(s) with Mercado Pago; retried {refunds} refund(s).")
