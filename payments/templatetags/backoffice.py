"""Figures for the admin home page: the review queue's size."""

from django import template

from payments.models import Payment

register = template.Library()


@register.simple_tag
def review_queue_count() -> int:
    return Payment.objects.filter(needs_review=True).count()


@register.simple_tag
def active_stores():
    """The stores whose pickup boards the back office links to."""
    from orders.models import Store

    return list(Store.objects.filter(active=True).order_by("name").only("slug", "name"))
