"""Who may do what: kiosk terminals, kitchen staff and managers are users in the groups of those names."""

from rest_framework.permissions import BasePermission

KIOSK = "kiosk"
KITCHEN = "kitchen"
MANAGER = "manager"
ROLES = (KIOSK, KITCHEN, MANAGER)


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
    """Kitchen staff and managers see every order; kiosks see only their own terminal's."""
    return has_role(user, KITCHEN, MANAGER)


def allow(*roles: str) -> type[BasePermission]:
    """A DRF permission class admitting users with any of `roles`."""

    class HasRole(BasePermission):
        message = f"This endpoint is for: {', '.join(roles)}."

        def has_permission(self, request, view) -> bool:
            return has_role(request.user, *roles)

    HasRole.__name__ = f"Allow_{'_'.join(roles)}"
    return HasRole
