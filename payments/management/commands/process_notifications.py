from django.core.management.base import BaseCommand

from payments.management.arguments import bounded_int
from payments.webhooks import deliveries_retry


class Command(BaseCommand):
    help = (
        "Apply Mercado Pago notifications that could not be applied when they arrived (Mercado Pago was "
        "unreachable). Safe to run every minute, from several machines at once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit",
            type=bounded_int(1, 10_000),
            default=200,
            help="1 to 10000: at most this many deliveries per run.",
        )

    def handle(self, *args, limit, **options):
        done = deliveries_retry(limit=limit)
        self.stdout.write(f"Processed {done} pending notification(s).")
