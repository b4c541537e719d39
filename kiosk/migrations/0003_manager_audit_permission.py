"""Managers read the audit trail in the admin (nobody may change it)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    manager, _ = Group.objects.get_or_create(name="manager")
    manager.permissions.add(*Permission.objects.filter(content_type__app_label="kiosk", codename="view_auditrecord"))


class Migration(migrations.Migration):
    dependencies = [
        ("kiosk", "0002_audit_record"),
        ("orders", "0002_roles_and_pickup_counter"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
