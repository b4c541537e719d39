"""One time zone per back-office page, so that a page never mixes zones (or UTC with local time).

- A kitchen or cashier login works in one store: every page it sees is in its store's zone (`Store.time_zone`).
- A page about one store's rows is in that store's zone: an order, a payment, a terminal or an event (its order's
  store), and a list filtered to one store (`?store__id__exact=`, `?order__store__id__exact=`...).
- Anything else spans stores (managers' lists, the platform's tasks and workers, the simulator): the installation's
  zone, settings.TIME_ZONE (America/Sao_Paulo).

The admin's header names the zone of the page it is on (templates/admin/base_site.html), whichever it is.
"""

import zoneinfo
from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.template.response import SimpleTemplateResponse
from django.utils import timezone

from kiosk.roles import works_in_one_store


def zone_of(store) -> zoneinfo.ZoneInfo:
    """A store's zone; the installation's for no store (or a zone this machine does not know)."""
    try:
        return zoneinfo.ZoneInfo(store.time_zone) if store is not None else default_zone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return default_zone()


def default_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def home_store(user):
    """The store of a login that works in one store (kitchen, cashier), else None."""
    from orders.selectors import staff_store

    return staff_store(user) if works_in_one_store(user) else None


def common_store(stores: Iterable):
    """The one store all of `stores` belong to, or None when there are several (or none)."""
    found = {store.pk: store for store in stores if store is not None}
    return next(iter(found.values())) if len(found) == 1 else None


def render_in_zone(zone: zoneinfo.ZoneInfo, view: Callable, *args, **kwargs):
    """Runs an admin view with `zone` as the current time zone, and renders its page inside it too (a
    TemplateResponse renders after the view returns, which would be in the default zone)."""
    with timezone.override(zone):
        response = view(*args, **kwargs)
        if isinstance(response, SimpleTemplateResponse) and not response.is_rendered:
            response.render()
    return response


class StoreTimeZoneMixin:
    """For a ModelAdmin: its pages in the zone of the store they are about (see the module's docstring).

    `store_lookup` is the path from the model to its store ("store", "order__store"); None for models that
    belong to no store (their pages are in the zone of a one-store login, else the installation's)."""

    store_lookup: str | None = None

    def page_store(self, request, object_id=None):
        from orders.models import Store

        store = home_store(request.user)
        if store is not None or self.store_lookup is None:
            return store
        if object_id is not None:
            try:
                store_id = (
                    self.model._default_manager.filter(pk=unquote(str(object_id)))
                    .values_list(self.store_lookup, flat=True)
                    .first()
                )
            except (ValidationError, ValueError):
                return None
        else:
            store_id = request.GET.get(f"{self.store_lookup}__id__exact", "")
            store_id = int(store_id) if store_id.isascii() and store_id.isdigit() and len(store_id) <= 18 else None
        return Store.objects.filter(pk=store_id).first() if store_id else None

    def page_zone(self, request, object_id=None) -> zoneinfo.ZoneInfo:
        return zone_of(self.page_store(request, object_id))

    def changelist_view(self, request, extra_context=None):
        return render_in_zone(self.page_zone(request), super().changelist_view, request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        zone = self.page_zone(request, object_id)
        return render_in_zone(zone, super().changeform_view, request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        return render_in_zone(
            self.page_zone(request, object_id), super().history_view, request, object_id, extra_context
        )

    def delete_view(self, request, object_id, extra_context=None):
        return render_in_zone(
            self.page_zone(request, object_id), super().delete_view, request, object_id, extra_context
        )
