"""Routes of the Mercado Pago simulator, mounted at /mp-simulator/ (simulator mode only, see kiosk/urls.py)."""

from django.urls import path, re_path

from payments.simulator import views

urlpatterns = [
    path("pay/<str:order_id>/", views.pay_page, name="mp-simulator-pay"),
    re_path(r"^v1/orders/(?P<order_id>[^/]+)/simulate/?$", views.simulate_view, name="mp-simulator-simulate"),
    re_path(
        r"^v1/orders/(?P<order_id>[^/]+)/refunds/confirm/?$",
        views.confirm_refunds_view,
        name="mp-simulator-confirm-refunds",
    ),
    re_path(r"^(?P<api_path>v1/.*)$", views.api_view, name="mp-simulator-api"),
]
