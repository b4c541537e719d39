"""Managers see payments, their ledger, refunds and the notification inbox in the admin, may refund and
see the sales report. Kitchen staff (the cashiers) may see payments but not refund."""

from django.db import migrations

from kiosk.migration_helpers import grant as grant_permissions

MANAGER_CODENAMES = [
    "view_payment",
    "view_paymentevent",
    "view_refund",
    "view_webhookdelivery",
    "refund_payment",
    "view_sales_report",
]
KITCHEN_CODENAMES = ["view_payment", "view_paymentevent", "view_refund"]


def grant(apps, schema_editor):
    grant_permissions(apps, "manager", "payments", MANAGER_CODENAMES)
    grant_permissions(apps, "kitchen", "payments", KITCHEN_CODENAMES)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
        ("orders", "0002_roles_and_pickup_counter"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
