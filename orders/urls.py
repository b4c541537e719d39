"""Routes of the orders API under /api/v1/. A trailing slash is optional, so a POST without it never 500s."""

from django.urls import re_path

from orders import views

UUID = r"(?P<order_id>[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})"
ID = r"(?P<product_id>[0-9]{1,18})"

urlpatterns = [
    re_path(r"^categories/?$", views.CategoryListView.as_view(), name="category-list"),
    re_path(r"^products/?$", views.ProductListView.as_view(), name="product-list"),
    re_path(rf"^products/{ID}/?$", views.ProductDetailView.as_view(), name="product-detail"),
    re_path(r"^options/(?P<option_id>[0-9]{1,18})/?$", views.OptionDetailView.as_view(), name="option-detail"),
    re_path(r"^customers/?$", views.CustomerView.as_view(), name="customers"),
    re_path(r"^me/?$", views.MeView.as_view(), name="me"),
    re_path(r"^orders/?$", views.OrderListView.as_view(), name="order-list"),
    re_path(rf"^orders/{UUID}/?$", views.OrderDetailView.as_view(), name="order-detail"),
    re_path(rf"^orders/{UUID}/cancel/?$", views.OrderCancelView.as_view(), name="order-cancel"),
    re_path(r"^kitchen/orders/?$", views.KitchenQueueView.as_view(), name="kitchen-queue"),
    re_path(rf"^kitchen/orders/{UUID}/status/?$", views.KitchenStatusView.as_view(), name="kitchen-status"),
    re_path(r"^pickup-board/?$", views.PickupBoardView.as_view(), name="pickup-board"),
]
