"""Creates the three roles (groups) every install needs, with the admin permissions of each,
and the pickup number counter row.

Users are not created here: demo users come only from `manage.py seed_demo` (run by `make run`).
"""

import datetime

from django.contrib.auth.management import create_permissions
from django.db import migrations

MANAGER_PERMISSIONS = [
    ("orders", "category", ("view", "add", "change")),
    ("orders", "product", ("view", "add", "change")),
    ("orders", "customer", ("view", "change")),
    ("orders", "terminal", ("view", "add", "change")),
    ("orders", "order", ("view", "change")),
]
KITCHEN_PERMISSIONS = [
    ("orders", "order", ("view",)),
    ("orders", "product", ("view",)),
]


def create_roles(apps, schema_editor):
    # Permissions normally appear after all migrations ran; make them exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def grant(group, spec):
        for app_label, model, actions in spec:
            codenames = [f"{action}_{model}" for action in actions]
            group.permissions.add(
                *Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
            )

    Group.objects.get_or_create(name="kiosk")
    kitchen, _ = Group.objects.get_or_create(name="kitchen")
    manager, _ = Group.objects.get_or_create(name="manager")
    grant(kitchen, KITCHEN_PERMISSIONS)
    grant(manager, MANAGER_PERMISSIONS)

    PickupCounter = apps.get_model("orders", "PickupCounter")
    PickupCounter.objects.get_or_create(pk=1, defaults={"day": datetime.date(2000, 1, 1)})


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
