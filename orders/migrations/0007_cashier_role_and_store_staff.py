"""The cashier role, and who may manage stores.

- creates the group `cashier` (counter staff): in the admin it sees orders (of its store); the permission to
  record a counter payment is a payments permission, granted by payments 0006;
- managers may see, add and change stores and say which store a kitchen or cashier login works in
  (StaffMember);
- kitchen and cashier logins now see only their store's orders: on an install with exactly one store, the ones
  that work in no store yet are put in that store, so they keep seeing what they saw. With several stores a
  manager chooses (until then such a login is refused with `store_not_assigned`).
"""

from django.db import migrations

from kiosk.migration_helpers import grant as grant_permissions

MANAGER_PERMISSIONS = [
    "view_store", "add_store", "change_store",
    "view_staffmember", "add_staffmember", "change_staffmember", "delete_staffmember",
]  # fmt: skip
CASHIER_PERMISSIONS = ["view_order"]
STORE_ROLES = ["kitchen", "cashier"]


def grant(apps, schema_editor):
    grant_permissions(apps, "manager", "orders", MANAGER_PERMISSIONS)
    grant_permissions(apps, "cashier", "orders", CASHIER_PERMISSIONS)


def staff_of_the_only_store(apps, schema_editor):
    Store = apps.get_model("orders", "Store")
    StaffMember = apps.get_model("orders", "StaffMember")
    User = apps.get_model("auth", "User")
    stores = list(Store.objects.order_by("pk")[:2])
    if len(stores) != 1:
        return
    for user in User.objects.filter(groups__name__in=STORE_ROLES, staff_member__isnull=True).distinct():
        StaffMember.objects.get_or_create(user=user, defaults={"store": stores[0]})


def forwards(apps, schema_editor):
    grant(apps, schema_editor)
    staff_of_the_only_store(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0006_stores_options_combos"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
