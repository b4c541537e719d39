"""The menu, customers, kiosk terminals and orders. State changes live in `orders/services.py`."""

import datetime
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from orders.cpf import mask_cpf, validate_cpf

MONEY = {"max_digits": 10, "decimal_places": 2}
MAX_MONEY = Decimal("99999999.99")  # the largest amount a MONEY column holds
MAX_QUANTITY = 50
MAX_NOTE_LENGTH = 140


class Store(models.Model):
    """A restaurant: it owns its terminals, its kitchen and its pickup number sequence."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    address = models.CharField(max_length=200, blank=True)
    opening_hours = models.CharField(max_length=200, blank=True, help_text='For people, e.g. "Seg-Dom 10h-23h".')
    time_zone = models.CharField(
        max_length=60, default="America/Sao_Paulo", help_text="Pickup numbers restart at this zone's midnight."
    )
    offers_eat_in = models.BooleanField("eat in", default=True)
    offers_takeaway = models.BooleanField("takeaway", default=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(offers_eat_in=True) | Q(offers_takeaway=True), name="store_offers_a_dining_choice"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        # Its number sequence exists from the start: taking a number is then always a lock on a known row.
        PickupCounter.objects.get_or_create(store=self, defaults={"day": datetime.date(2000, 1, 1)})

    def clean(self):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from django.core.exceptions import ValidationError

        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"time_zone": f"Unknown time zone '{self.time_zone}'."}) from None


class StaffMember(models.Model):
    """Which store a kitchen or cashier login works in (managers may have none: they see every store)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_member")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="staff")

    def __str__(self) -> str:
        return f"{self.user} @ {self.store}"


class Category(models.Model):
    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    position = models.PositiveSmallIntegerField(default=0, help_text="Order on the kiosk menu, smallest first.")
    updated_at = models.DateTimeField(auto_now=True)  # part of the menu's stamp (selectors.menu_stamp)

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    class Kind(models.TextChoices):
        ITEM = "item", "Item"
        COMBO = "combo", "Combo"

    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    kind = models.CharField(
        max_length=10,
        choices=Kind.choices,
        default=Kind.ITEM,
        help_text="A combo's option groups are its slots; each option of a slot is a product.",
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    price = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal("0.01"))])
    image_url = models.URLField(max_length=500, blank=True)
    active = models.BooleanField(default=True)
    stock = models.PositiveIntegerField(
        null=True, blank=True, help_text="Units left to sell. Empty means unlimited (made to order)."
    )
    suggestions = models.ManyToManyField(
        "self", symmetrical=False, blank=True, help_text="Offered with this product on the kiosk (upsell)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category__position", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="product_price_positive"),
            models.CheckConstraint(
                condition=Q(stock__isnull=True) | Q(stock__gte=0), name="product_stock_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_available(self) -> bool:
        return self.active and (self.stock is None or self.stock > 0)


class OptionGroup(models.Model):
    """Choices on a product ("Adicionais", "Retirar", "Ponto da carne"), or a combo's slot ("Bebida")."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="option_groups")
    name = models.CharField(max_length=80)
    min_choices = models.PositiveSmallIntegerField(default=0)
    max_choices = models.PositiveSmallIntegerField(default=1)
    position = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_choices__gte=1) & Q(max_choices__gte=models.F("min_choices")),
                name="option_group_choices_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} / {self.name}"


class Option(models.Model):
    """One choice of a group, at an extra price (may be 0.00). In a combo's slot it names the product chosen."""

    group = models.ForeignKey(OptionGroup, on_delete=models.CASCADE, related_name="options")
    name = models.CharField(max_length=80)
    price = models.DecimalField(**MONEY, default=Decimal("0.00"), validators=[MinValueValidator(Decimal("0.00"))])
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="Combo slots only."
    )
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.CheckConstraint(condition=Q(price__gte=0), name="option_price_not_negative")]

    def __str__(self) -> str:
        return f"{self.name} (+{self.price})" if self.price else self.name

    @property
    def is_available(self) -> bool:
        """Active, and for a combo's slot choice its product can be sold (the kiosk greys the others out)."""
        return self.active and (self.product is None or self.product.is_available)

    def clean(self):
        from django.core.exceptions import ValidationError

        group = self.group_id and OptionGroup.objects.filter(pk=self.group_id).select_related("product").first()
        if not group:
            return  # a new group's options (admin): checked once the group exists
        is_combo = group.product.kind == Product.Kind.COMBO
        if is_combo and self.product_id is None:
            raise ValidationError({"product": "A combo's slot choice names the product chosen."})
        if not is_combo and self.product_id is not None:
            raise ValidationError({"product": "Only a combo's slots name products; leave it empty."})
        part_kind = (
            self.product_id and Product.objects.filter(pk=self.product_id).values_list("kind", flat=True).first()
        )
        if part_kind == Product.Kind.COMBO:
            raise ValidationError({"product": "A combo's part is an item, not another combo."})


class Customer(models.Model):
    cpf = models.CharField("CPF", max_length=11, unique=True, validators=[validate_cpf])
    name = models.CharField(max_length=120, blank=True)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name or 'Cliente'} ({mask_cpf(self.cpf)})"


class Terminal(models.Model):
    """A kiosk device, which is also a Mercado Pago point of sale."""

    name = models.CharField(max_length=80)
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="terminals")
    external_pos_id = models.CharField(
        "Mercado Pago external POS id",
        max_length=40,
        unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9]+$", "Use letters and digits only.")],
        help_text="The point of sale's external id registered in Mercado Pago (letters and digits).",
    )
    active = models.BooleanField(default=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="terminal",
        help_text="The kiosk login (group 'kiosk') this device signs in with.",
    )

    class Meta:
        ordering = ["store__name", "name"]

    def __str__(self) -> str:
        return f"{self.store} / {self.name}"


class Order(models.Model):
    class Status(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
        RECEIVED = "received", "Received (paid)"
        IN_PREPARATION = "in_preparation", "In preparation"
        READY = "ready", "Ready for pickup"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    class Dining(models.TextChoices):
        EAT_IN = "eat_in", "Eat in"
        TAKEAWAY = "takeaway", "Takeaway"

    class CancelReason(models.TextChoices):
        CUSTOMER = "customer", "Customer gave up"
        PAYMENT_EXPIRED = "payment_expired", "Payment expired"
        STAFF = "staff", "Cancelled by staff"
        REFUNDED = "refunded", "Refunded before delivery"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    business_date = models.DateField(help_text="Local (store) date the pickup number belongs to.")
    number = models.PositiveIntegerField(help_text="Pickup number shown to the customer; restarts every day.")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="orders")
    terminal = models.ForeignKey(Terminal, on_delete=models.PROTECT, related_name="orders")
    dining = models.CharField(max_length=10, choices=Dining.choices, blank=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="orders")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AWAITING_PAYMENT)
    total = models.DecimalField(**MONEY)
    cancel_reason = models.CharField(max_length=20, choices=CancelReason.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    received_at = models.DateTimeField(null=True, blank=True, db_index=True)  # when it was paid: sales reports
    in_preparation_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cpf_on_receipt = models.BooleanField(
        "CPF na nota", default=False, help_text="The customer wants the CPF on the fiscal receipt."
    )
    # How many domain events the order has had: the last one's `sequence` (kiosk/events).
    event_sequence = models.PositiveIntegerField(default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "business_date", "number"], name="order_number_unique_per_store_day"
            ),
            models.CheckConstraint(condition=Q(total__gt=0), name="order_total_positive"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="order_status_created"),
            models.Index(fields=["store", "status", "created_at"], name="order_store_status_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.number} ({self.business_date:%d/%m})"


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    product_name = models.CharField(max_length=120, help_text="Name at the time of the order.")
    unit_price = models.DecimalField(**MONEY, help_text="Price at the time of the order.")
    quantity = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(MAX_QUANTITY)])
    note = models.CharField(max_length=MAX_NOTE_LENGTH, blank=True)
    line_total = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1) & Q(quantity__lte=MAX_QUANTITY), name="order_item_quantity_range"
            ),
            models.CheckConstraint(condition=Q(unit_price__gt=0), name="order_item_unit_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_name}"


class OrderItemOption(models.Model):
    """A choice made on an order line, as at order time: an option ("+ bacon"), or a combo's part (the drink
    chosen), whose own options point at it through `parent`. Prices are per unit of the line."""

    item = models.ForeignKey(OrderItem, on_delete=models.CASCADE, related_name="options")
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="options")
    option = models.ForeignKey(Option, on_delete=models.PROTECT, related_name="+")
    group_name = models.CharField(max_length=80)
    name = models.CharField(max_length=80)
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="A combo's part."
    )
    price = models.DecimalField(**MONEY, help_text="Extra price of one, at the time of the order.")
    quantity = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name}"


class PickupCounter(models.Model):
    """A store's pickup number sequence: one row per store, made with the store, reset when its business day
    changes.

    A row that always exists (rather than a row per day) means allocating a number never races to insert:
    it is one `SELECT ... FOR UPDATE` on a known row, which serialises that store's numbering only.
    """

    store = models.OneToOneField(Store, on_delete=models.CASCADE, related_name="pickup_counter")
    day = models.DateField()
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.store}: {self.day} {self.last_number}"
