"""Request parsing and response shapes for the orders API. Money is always a decimal string."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from kiosk.api import MoneyField, StrictBooleanField, StrictCharField, StrictIntegerField, StrictMixin
from orders.cpf import mask_cpf, mask_email, normalize_cpf
from orders.models import MAX_NOTE_LENGTH, MAX_QUANTITY, Category, Customer, Order, OrderItem, Product
from orders.services import KITCHEN_STATUSES

MAX_ITEMS_PER_ORDER = 50


class CPFField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 20)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value == "":
            return value
        try:
            return normalize_cpf(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


# --- Menu -----------------------------------------------------------------------------------------


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name", "slug", "position"]


class ProductSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    available = serializers.BooleanField(source="is_available", read_only=True)

    class Meta:
        model = Product
        fields = ["id", "category", "name", "description", "price", "image_url", "active", "stock", "available"]


class ProductWriteSerializer(StrictMixin, serializers.ModelSerializer):
    """What a manager sends to create or change a product. `category` is the category's slug."""

    category = serializers.SlugRelatedField(slug_field="slug", queryset=Category.objects.all())
    price = MoneyField()
    stock = StrictIntegerField(min_value=0, max_value=1_000_000, required=False, allow_null=True)
    active = StrictBooleanField(required=False)
    name = StrictCharField(max_length=120)
    description = StrictCharField(required=False, allow_blank=True)

    class Meta:
        model = Product
        fields = ["category", "name", "description", "price", "image_url", "active", "stock"]


# --- Customers ------------------------------------------------------------------------------------


class CustomerIdentifySerializer(StrictMixin, serializers.Serializer):
    cpf = CPFField(allow_blank=False)
    name = StrictCharField(max_length=120, required=False, allow_blank=True, default="")
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")


class CustomerSerializer(serializers.ModelSerializer):
    """A customer as the API shows one: CPF and e-mail masked, enough for 'is this you?'."""

    cpf = serializers.SerializerMethodField()
    email = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = ["id", "name", "cpf", "email"]

    def get_cpf(self, customer) -> str:
        return mask_cpf(customer.cpf)

    def get_email(self, customer) -> str:
        return mask_email(customer.email)


# --- Orders ---------------------------------------------------------------------------------------


class OrderItemInputSerializer(StrictMixin, serializers.Serializer):
    product_id = StrictIntegerField(min_value=1, max_value=2**53)
    quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)
    note = StrictCharField(max_length=MAX_NOTE_LENGTH, required=False, allow_blank=True, default="")


class OrderCreateSerializer(StrictMixin, serializers.Serializer):
    items = OrderItemInputSerializer(many=True, allow_empty=False, max_length=MAX_ITEMS_PER_ORDER)
    customer_cpf = CPFField(required=False, allow_null=True, allow_blank=True, default=None)
    cpf_on_receipt = StrictBooleanField(
        required=False, default=False, help_text='"CPF na nota": put customer_cpf on the fiscal receipt.'
    )
    dining = serializers.ChoiceField(
        choices=Order.Dining.choices,
        required=False,
        default="",
        help_text="eat_in or takeaway: required when the terminal's store offers both.",
    )

    def validate(self, attrs):
        if attrs.get("cpf_on_receipt") and not attrs.get("customer_cpf"):
            raise serializers.ValidationError({"cpf_on_receipt": ["A CPF on the receipt needs customer_cpf."]})
        return attrs


class OrderItemSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="product_name")

    class Meta:
        model = OrderItem
        fields = ["product_id", "name", "unit_price", "quantity", "note", "line_total"]


class TerminalBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    store = serializers.CharField(source="store.name")


class StoreBriefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class OrderSerializer(serializers.ModelSerializer):
    items = OrderItemSerializer(many=True, read_only=True)
    customer = CustomerSerializer(read_only=True, allow_null=True)
    terminal = TerminalBriefSerializer(read_only=True)
    store = StoreBriefSerializer(read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "number",
            "status",
            "items",
            "total",
            "dining",
            "customer",
            "cpf_on_receipt",
            "store",
            "terminal",
            "cancel_reason",
            "created_at",
            "received_at",
            "in_preparation_at",
            "ready_at",
            "completed_at",
            "cancelled_at",
        ]


class KitchenStatusSerializer(StrictMixin, serializers.Serializer):
    status = serializers.ChoiceField(choices=[str(s) for s in KITCHEN_STATUSES])


class PickupBoardSerializer(serializers.Serializer):
    in_preparation = serializers.ListField(child=serializers.IntegerField())
    ready = serializers.ListField(child=serializers.IntegerField())
