from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from orders.privacy import customers_anonymise
from payments.management.arguments import bounded_int

MAX_DAYS = 36_500


class Command(BaseCommand):
    help = (
        "LGPD: anonymise the customers with no order in the last CUSTOMER_RETENTION_DAYS days (CPF, name and "
        "e-mail, and their copies in events, the payment ledger and the audit trail). Orders, payments, refunds "
        "and amounts stay. Safe to run again: the anonymised are not touched twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            dest="days",
            type=bounded_int(1, MAX_DAYS),
            default=settings.CUSTOMER_RETENTION_DAYS,
            metavar="DAYS",
            help="Anonymise customers with no order for this many days (default CUSTOMER_RETENTION_DAYS, %(default)s).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count who would be anonymised.")
        parser.add_argument(
            "--batch-size",
            type=bounded_int(1, 10_000),
            default=200,
            help="Customers per transaction (default %(default)s).",
        )
        parser.add_argument(
            "--user",
            help="Username the audit trail names (a manager or superuser); default: the system account "
            "'lgpd-retention'.",
        )

    def handle(self, *args, days, dry_run, batch_size, user, **options):
        actor = None
        if user is not None:
            actor = get_user_model().objects.filter(username=user, is_active=True).first()
            if actor is None or not actor.has_perm("orders.change_customer"):
                raise CommandError(
                    f"User '{user}' does not exist or may not change customers (orders.change_customer)."
                )
        result = customers_anonymise(older_than_days=days, dry_run=dry_run, batch_size=batch_size, actor=actor)
        self.stdout.write(result.summary())
