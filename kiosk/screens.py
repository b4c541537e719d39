"""The restaurant's screens: the kiosk, the kitchen display, the pickup board and the counter.

Each is one page of HTML (templates/screens/) and plain JavaScript (static/screens/) over the public REST API:
the page holds no data and needs no session; the screen logs in through the API and keeps its tokens on the
device. Words come from the translation catalogues (the page's own through {% translate %}, the scripts'
through the JavaScript catalogue at /jsi18n/)."""

from django.conf import settings
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from orders.models import Store


@require_safe
def kiosk_screen(request):
    """The self-service kiosk: menu, cart, CPF, the Mercado Pago QR and the pickup number. Each customer starts
    in the site's language (`default_language`), whatever the last one chose."""
    return render(request, "screens/kiosk.html", {"screen": "kiosk", "default_language": settings.LANGUAGE_CODE})


@require_safe
def kitchen_screen(request):
    """The kitchen display: the store's queue in columns, one tap to advance an order."""
    return render(request, "screens/kitchen.html", {"screen": "kitchen"})


@require_safe
def counter_screen(request):
    """The counter: find an order by its number, take a payment, today's orders."""
    return render(request, "screens/counter.html", {"screen": "counter"})


@require_safe
def pickup_screen(request, store):
    """The pickup board for a TV: numbers in preparation and ready. Public, no personal data."""
    store = get_object_or_404(Store, slug=store, active=True)
    return render(request, "screens/pickup.html", {"screen": "pickup", "store": store})
