from django.core.management.base import BaseCommand

from payments.webhooks import deliveries_retry


class Command(BaseCommand):
    help = (
        "Apply Mercado Pago notifications that could not be applied when they arrived (Mercado Pago was "
        "unreachable). Safe to run every minute, from several machines at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=200, help="At most this many deliveries per run.")

    def handle(self, *args, limit, **options):
        done = deliveries_retry(limit=limit)
        self.stdout.write(f"Processed {done} pending notification(s).")
