"""Creates the three roles (groups) every install needs, with the admin permissions of each,
and the pickup number counter row.

Users are not created here: demo users come only from `manage.py seed_demo` (run by `make run`).
"""

import datetime

from django.db import migrations

from kiosk.migration_helpers import grant

MANAGER_PERMISSIONS = [
    "view_category", "add_category", "change_category",
    "view_product", "add_product", "change_product",
    "view_customer", "change_customer",
    "view_terminal", "add_terminal", "change_terminal",
    "view_order", "change_order",
]  # fmt: skip
KITCHEN_PERMISSIONS = ["view_order", "view_product"]


def create_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="kiosk")
    grant(apps, "kitchen", "orders", KITCHEN_PERMISSIONS)
    grant(apps, "manager", "orders", MANAGER_PERMISSIONS)

    PickupCounter = apps.get_model("orders", "PickupCounter")
    if any(field.name == "store" for field in PickupCounter._meta.fields):
        return  # called with today's models (the tests' migration_data): counters are per store since 0006
    PickupCounter.objects.get_or_create(pk=1, defaults={"day": datetime.date(2000, 1, 1)})


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
