"""Managers read the audit trail in the admin (nobody may change it)."""

from django.db import migrations

from kiosk.migration_helpers import grant as grant_permissions


def grant(apps, schema_editor):
    grant_permissions(apps, "manager", "kiosk", ["view_auditrecord"])


class Migration(migrations.Migration):
    dependencies = [
        ("kiosk", "0002_audit_record"),
        ("orders", "0002_roles_and_pickup_counter"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
