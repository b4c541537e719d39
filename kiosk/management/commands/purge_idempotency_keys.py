from django.core.management.base import BaseCommand

from kiosk.idempotency import purge_expired_keys


class Command(BaseCommand):
    help = "Delete expired Idempotency-Key records (older than IDEMPOTENCY_KEY_TTL_HOURS). Safe to run from cron."

    def handle(self, *args, **options):
        deleted = purge_expired_keys()
        self.stdout.write(f"Purged {deleted} expired idempotency key(s).")
