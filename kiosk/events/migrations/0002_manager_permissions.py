"""Managers see events, deliveries, endpoints, background tasks and workers in the admin; they manage the
endpoints, send deliveries again (change_eventdelivery) and run dead tasks again (change_dbtaskresult).
Kitchen staff and kiosks get none of it."""

from django.db import migrations

from kiosk.migration_helpers import grant as grant_permissions

MANAGER_CODENAMES = {
    "events": [
        "view_event",
        "view_eventdelivery",
        "change_eventdelivery",
        "view_deliveryattempt",
        "view_webhookendpoint",
        "add_webhookendpoint",
        "change_webhookendpoint",
        "delete_webhookendpoint",
    ],
    "django_tasks_database": ["view_dbtaskresult", "change_dbtaskresult"],
    "kiosk": ["view_workerheartbeat"],
}


def grant(apps, schema_editor):
    for app_label, codenames in MANAGER_CODENAMES.items():
        grant_permissions(apps, "manager", app_label, codenames)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
        ("kiosk", "0004_workerheartbeat"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
        ("orders", "0002_roles_and_pickup_counter"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
