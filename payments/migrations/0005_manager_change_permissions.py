"""Actions that change a payment ("Sync with Mercado Pago", "Process again" on a notification) need a change
permission, not only view: managers have it, kitchen staff and cashiers do not. The admin pages themselves stay
read-only."""

from django.db import migrations

from kiosk.migration_helpers import grant as grant_permissions


def grant(apps, schema_editor):
    grant_permissions(apps, "manager", "payments", ["change_payment", "change_webhookdelivery"])


class Migration(migrations.Migration):
    dependencies = [("payments", "0004_async_refunds_and_notification_hardening")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
