"""Managers see payments, their ledger, refunds and the notification inbox in the admin, may refund and
see the sales report. Kitchen staff (the cashiers) may see payments but not refund."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

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
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    manager, _ = Group.objects.get_or_create(name="manager")
    manager.permissions.add(
        *Permission.objects.filter(content_type__app_label="payments", codename__in=MANAGER_CODENAMES)
    )
    kitchen, _ = Group.objects.get_or_create(name="kitchen")
    kitchen.permissions.add(
        *Permission.objects.filter(content_type__app_label="payments", codename__in=KITCHEN_CODENAMES)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
        ("orders", "0002_roles_and_pickup_counter"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
