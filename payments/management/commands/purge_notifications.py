from django.conf import settings
from django.core.management.base import BaseCommand

from payments.management.arguments import bounded_int
from payments.webhooks import MAX_KEEP_DAYS, deliveries_purge


class Command(BaseCommand):
    help = (
        "Delete rejected notification deliveries (bad signature, unreadable body) and unsigned IPNs older than "
        "MERCADOPAGO_WEBHOOK_KEEP_REJECTED_DAYS. Signed deliveries are kept: they are the payments' audit trail."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=bounded_int(0, MAX_KEEP_DAYS),
            default=settings.MERCADOPAGO_WEBHOOK_KEEP_REJECTED_DAYS,
            help="Keep rejected deliveries younger than this many days (default %(default)s).",
        )

    def handle(self, *args, days, **options):
        deleted = deliveries_purge(days=days)
        self.stdout.write(f"Deleted {deleted} rejected or unsigned notification(s) older than {days} day(s).")
