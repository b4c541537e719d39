"""Request parsing and response shapes for the orders API. Money is always a decimal string."""

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kiosk.api import MoneyField, StrictBooleanField, StrictCharField, StrictIntegerField, StrictMixin
from kiosk.roles import ROLES, is_staff_role
from orders.cpf import mask_cpf, mask_email, normalize_cpf
from orders.models import (
    MAX_NOTE_LENGTH,
    MAX_QUANTITY,
    Category,
    Customer,
    Option,
    OptionGroup,
    Order,
    OrderItem,
    Product,
)
from orders.selectors import item_options
from orders.services import KITCHEN_STATUSES, ItemRequest

MAX_ITEMS_PER_ORDER = 50
MAX_OPTIONS_PER_CHOICE = 30


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


class OptionSerializer(serializers.ModelSerializer):
    """An option as the menu shows it. `product_id`: the product a combo's slot choice stands for (else null).
    `available` is false when the option is switched off or its product is sold out: the kiosk greys it out."""

    product_id = serializers.IntegerField(read_only=True, allow_null=True)
    available = serializers.BooleanField(source="is_available", read_only=True)

    class Meta:
        model = Option
        fields = ["id", "name", "price", "product_id", "available"]


class OptionGroupSerializer(serializers.ModelSerializer):
    options = OptionSerializer(many=True, read_only=True)

    class Meta:
        model = OptionGroup
        fields = ["id", "name", "min_choices", "max_choices", "options"]


class ImageURLField(serializers.URLField):
    """A product's picture: an http(s) URL, or "" for none (its schema: kiosk.openapi.ImageURLFieldExtension)."""


class ProductSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    image_url = ImageURLField(read_only=True, help_text='The picture\'s absolute URL; "" for a product without one.')
    available = serializers.BooleanField(source="is_available", read_only=True)
    option_groups = OptionGroupSerializer(many=True, read_only=True)
    suggestions = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True, help_text="Products offered with this one (upsell), among those you can see."
    )

    class Meta:
        model = Product
        fields = [
            "id",
            "category",
            "kind",
            "name",
            "description",
            "price",
            "image_url",
            "active",
            "stock",
            "available",
            "option_groups",
            "suggestions",
        ]


class OptionDetailSerializer(OptionSerializer):
    """An option as a manager changes it (`PATCH /options/<id>/`)."""

    group = serializers.CharField(source="group.name", read_only=True)
    product = serializers.IntegerField(source="group.product_id", read_only=True, help_text="The product it is on.")

    class Meta(OptionSerializer.Meta):
        fields = ["id", "product", "group", "name", "price", "product_id", "active", "available"]


class OptionWriteSerializer(StrictMixin, serializers.ModelSerializer):
    """What a manager may change on an option: switch it off and on (sold out), or its extra price."""

    active = StrictBooleanField(required=False)
    price = MoneyField(required=False, min_value=Decimal("0.00"))

    class Meta:
        model = Option
        fields = ["active", "price"]


class ProductWriteSerializer(StrictMixin, serializers.ModelSerializer):
    """What a manager sends to create or change a product. `category` is the category's slug."""

    category = serializers.SlugRelatedField(slug_field="slug", queryset=Category.objects.all())
    price = MoneyField()
    stock = StrictIntegerField(min_value=0, max_value=1_000_000, required=False, allow_null=True)
    active = StrictBooleanField(required=False)
    name = StrictCharField(max_length=120)
    description = StrictCharField(required=False, allow_blank=True)
    image_url = ImageURLField(max_length=500, required=False, allow_blank=True)

    class Meta:
        model = Product
        fields = ["category", "name", "description", "price", "image_url", "active", "stock"]


# --- Customers ------------------------------------------------------------------------------------


class CustomerIdentifySerializer(StrictMixin, serializers.Serializer):
    cpf = CPFField(allow_blank=False)
    name = StrictCharField(max_length=120, required=False, allow_blank=True, default="")
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")


def shown_to(user) -> dict:
    """The serializer context for an answer to `user`: staff see a customer's name in full."""
    return {"full_name": is_staff_role(user)}


class CustomerSerializer(serializers.ModelSerializer):
    """A customer as the API shows one: CPF and e-mail masked, enough for 'is this you?'. The name in full
    only for staff (context from `shown_to`); a kiosk gets the first name: a CPF typed at a kiosk must not
    tell whoever typed it whose it is."""

    name = serializers.SerializerMethodField()
    cpf = serializers.SerializerMethodField()
    email = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = ["id", "name", "cpf", "email"]

    def get_name(self, customer) -> str:
        if self.context.get("full_name"):
            return customer.name
        return customer.name.split(maxsplit=1)[0] if customer.name.strip() else ""

    def get_cpf(self, customer) -> str:
        return mask_cpf(customer.cpf)

    def get_email(self, customer) -> str:
        return mask_email(customer.email)


# --- Orders ---------------------------------------------------------------------------------------


class PartOptionInputSerializer(StrictMixin, serializers.Serializer):
    """A combo part's own option ("sem cebola" on the burger of a combo): `quantity` per unit of the part."""

    option_id = StrictIntegerField(min_value=1, max_value=2**53)
    quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY, required=False, default=1)


class OptionInputSerializer(PartOptionInputSerializer):
    """An option chosen on a line, `quantity` per unit of the line. A combo's slot choice may carry its
    product's own `options` (one level: combo -> part -> the part's options)."""

    options = PartOptionInputSerializer(many=True, required=False, max_length=MAX_OPTIONS_PER_CHOICE)


class OrderItemInputSerializer(StrictMixin, serializers.Serializer):
    product_id = StrictIntegerField(min_value=1, max_value=2**53)
    quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)
    note = StrictCharField(max_length=MAX_NOTE_LENGTH, required=False, allow_blank=True, default="")
    options = OptionInputSerializer(many=True, required=False, max_length=MAX_OPTIONS_PER_CHOICE)


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

    # validate()'s rule in the schema (kiosk.openapi.StrictSerializerExtension): "CPF na nota" needs the CPF.
    openapi_rules = {
        "anyOf": [
            {"properties": {"cpf_on_receipt": {"enum": [False]}}},
            {"required": ["customer_cpf"], "properties": {"customer_cpf": {"type": "string", "minLength": 1}}},
        ]
    }

    def validate(self, attrs):
        if attrs.get("cpf_on_receipt") and not attrs.get("customer_cpf"):
            raise serializers.ValidationError({"cpf_on_receipt": [gettext("A CPF on the receipt needs customer_cpf.")]})
        return attrs

    def item_requests(self) -> list[ItemRequest]:
        """The validated lines, as `order_place` takes them."""
        return [ItemRequest(**item) for item in self.validated_data["items"]]


class ChosenPartOptionSerializer(serializers.Serializer):
    option_id = serializers.IntegerField()
    group = serializers.CharField()
    name = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2, help_text="Of one, at the time of the order.")
    quantity = serializers.IntegerField()
    product_id = serializers.IntegerField(allow_null=True, help_text="The product a combo's part stands for.")


class ChosenOptionSerializer(ChosenPartOptionSerializer):
    options = ChosenPartOptionSerializer(many=True, help_text="A combo part's own options, per unit of the part.")


class OrderItemSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="product_name")
    options = serializers.SerializerMethodField()

    class Meta:
        model = OrderItem
        fields = ["product_id", "name", "unit_price", "quantity", "note", "line_total", "options"]

    @extend_schema_field(ChosenOptionSerializer(many=True))
    def get_options(self, item) -> list[dict]:
        return ChosenOptionSerializer(item_options(item), many=True).data


class TerminalBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    store = serializers.CharField(source="store.name")


class StoreBriefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    # The screens show an order's times in its store's zone, whatever the device's clock says.
    time_zone = serializers.CharField()


class StoreDiningSerializer(StoreBriefSerializer):
    """A store with what its kiosk needs: whether to ask "eat in or take away?" (only where it offers both)."""

    offers_eat_in = serializers.BooleanField()
    offers_takeaway = serializers.BooleanField()


class MeTerminalSerializer(serializers.Serializer):
    """A kiosk login's own terminal."""

    id = serializers.IntegerField()
    name = serializers.CharField()


class MeSerializer(serializers.Serializer):
    """Who is logged in (`GET /me/`) and the store the screens are about, so they show its name and times
    from the start; a kiosk also gets its terminal."""

    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.ChoiceField(choices=ROLES))
    store = StoreDiningSerializer(allow_null=True)
    terminal = MeTerminalSerializer(
        allow_null=True, help_text="A kiosk login's terminal; null for other logins and for a kiosk with none yet."
    )


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


class KitchenItemSerializer(OrderItemSerializer):
    class Meta(OrderItemSerializer.Meta):
        fields = ["product_id", "name", "quantity", "note", "options"]


class KitchenOrderSerializer(serializers.ModelSerializer):
    """An order as a kitchen card shows it: what to make and for whom to call. No customer, no money."""

    items = KitchenItemSerializer(many=True, read_only=True)
    store = StoreBriefSerializer(read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "number",
            "status",
            "items",
            "dining",
            "store",
            "created_at",
            "received_at",
            "in_preparation_at",
            "ready_at",
        ]


class KitchenStatusSerializer(StrictMixin, serializers.Serializer):
    status = serializers.ChoiceField(choices=[str(s) for s in KITCHEN_STATUSES])


class PickupBoardSerializer(serializers.Serializer):
    in_preparation = serializers.ListField(child=serializers.IntegerField())
    ready = serializers.ListField(child=serializers.IntegerField())
