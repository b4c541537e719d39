"""Shared by the data migrations that hand permissions to the role groups. Keep it stable: old migrations
import it."""

from django.contrib.auth.management import create_permissions


def grant(apps, group_name: str, app_label: str, codenames: list[str]) -> None:
    """Gives the group these permissions of the app, creating the group and the permissions if need be
    (permissions normally appear only after all migrations have run)."""
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=group_name)
    group.permissions.add(*Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
