"""Who may do what: kiosk terminals, kitchen staff, cashiers and managers are users in the groups of those names.

Kitchen staff and cashiers work in one store (their `orders.StaffMember`) and see only its orders; managers
(and superusers) see every store's."""

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

KIOSK = "kiosk"
KITCHEN = "kitchen"
CASHIER = "cashier"
MANAGER = "manager"
ROLES = (KIOSK, KITCHEN, CASHIER, MANAGER)
# Roles that work in one store: without a StaffMember row such a login sees no orders at all.
STORE_ROLES = (KITCHEN, CASHIER)


def roles_of(user) -> frozenset[str]:
    """The user's roles, read once per request; a superuser is a manager."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_kiosk_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached |= {MANAGER}
        user._kiosk_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def is_staff_role(user) -> bool:
    """Kitchen staff, cashiers and managers see orders by store; kiosks see only their own terminal's."""
    return has_role(user, KITCHEN, CASHIER, MANAGER)


def works_in_one_store(user) -> bool:
    """Kitchen staff and cashiers (who are not also managers) see only their own store's orders."""
    return has_role(user, *STORE_ROLES) and not has_role(user, MANAGER)


def allow(*roles: str) -> type[BasePermission]:
    """A DRF permission class admitting users with any of `roles`."""

    class HasRole(BasePermission):
        message = format_lazy(_("This endpoint is for: {roles}."), roles=", ".join(roles))

        def has_permission(self, request, view) -> bool:
            return has_role(request.user, *roles)

    HasRole.__name__ = f"Allow_{'_'.join(roles)}"
    return HasRole
