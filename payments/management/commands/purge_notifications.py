from django.conf import settings
from django.core.management.base import BaseCommand

from payments.webhooks import deliveries_purge


class Command(BaseCommand):
    help = (
        "Delete rejected notification deliveries (bad signature, unreadable body) older than "
        "MERCADOPAGO_WEBHOOK_KEEP_REJECTED_DAYS. Genuine deliveries are kept: they are the payments' audit trail."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            default=settings.MERCADOPAGO_WEBHOOK_KEEP_REJECTED_DAYS,
            help="Keep rejected deliveries younger than this many days (default %(default)s).",
        )

    def handle(self, *args, days, **options):
        if days < 0:
            self.stderr.write("--days must be 0 or more.")
            raise SystemExit(2)
        deleted = deliveries_purge(days=days)
        self.stdout.write(f"Deleted {deleted} rejected notification(s) older than {days} day(s).")
