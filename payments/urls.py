"""Routes of the payments API under /api/v1/ (trailing slash optional, as everywhere)."""

from django.urls import re_path

from orders.urls import UUID
from payments import views

urlpatterns = [
    re_path(rf"^orders/{UUID}/checkout/?$", views.CheckoutView.as_view(), name="order-checkout"),
    re_path(rf"^orders/{UUID}/payment/?$", views.OrderPaymentView.as_view(), name="order-payment"),
    re_path(r"^webhooks/mercadopago/?$", views.mercadopago_webhook, name="mercadopago-webhook"),
]
