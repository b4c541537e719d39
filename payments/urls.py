"""Routes of the payments API under /api/v1/ (trailing slash optional, as everywhere)."""

from django.urls import re_path

from orders.urls import UUID
from payments import views

urlpatterns = [
    re_path(rf"^orders/{UUID}/checkout/?$", views.CheckoutView.as_view(), name="order-checkout"),
    re_path(rf"^orders/{UUID}/payment/?$", views.OrderPaymentView.as_view(), name="order-payment"),
    re_path(rf"^orders/{UUID}/counter-payment/?$", views.CounterPaymentView.as_view(), name="order-counter-payment"),
    re_path(
        r"^payments/(?P<payment_id>[0-9]{1,18})/refunds/?$", views.PaymentRefundsView.as_view(), name="payment-refunds"
    ),
    re_path(r"^webhooks/mercadopago/?$", views.mercadopago_webhook, name="mercadopago-webhook"),
]
