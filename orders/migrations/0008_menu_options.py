"""Managers edit option groups and options in the admin (the sold-out switch included); the kitchen may look.

Existing products stay items without options, and existing orders have no chosen options: nothing to move.
"""

from django.db import migrations

from kiosk.migration_helpers import grant as grant_permissions

MANAGER_PERMISSIONS = [
    "view_optiongroup", "add_optiongroup", "change_optiongroup", "delete_optiongroup",
    "view_option", "add_option", "change_option", "delete_option",
]  # fmt: skip
KITCHEN_PERMISSIONS = ["view_optiongroup", "view_option"]


def grant(apps, schema_editor):
    grant_permissions(apps, "manager", "orders", MANAGER_PERMISSIONS)
    grant_permissions(apps, "kitchen", "orders", KITCHEN_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("orders", "0007_cashier_role_and_store_staff")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
