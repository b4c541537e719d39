"""The menu, customers, kiosk terminals and orders. State changes live in `orders/services.py`."""

import datetime
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from orders.cpf import mask_cpf, validate_cpf

MONEY = {"max_digits": 10, "decimal_places": 2}
MAX_MONEY = Decimal("99999999.99")  # the largest amount a MONEY column holds
MAX_QUANTITY = 50
MAX_NOTE_LENGTH = 140


class Store(models.Model):
    """A restaurant: it owns its terminals, its kitchen and its pickup number sequence."""

    name = models.CharField(_("name"), max_length=80, unique=True)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    address = models.CharField(_("address"), max_length=200, blank=True)
    opening_hours = models.CharField(
        _("opening hours"), max_length=200, blank=True, help_text=_('For people, e.g. "Seg-Dom 10h-23h".')
    )
    time_zone = models.CharField(
        _("time zone"),
        max_length=60,
        default="America/Sao_Paulo",
        help_text=_("Pickup numbers restart at this zone's midnight; the back office shows the store's times in it."),
    )
    offers_eat_in = models.BooleanField(_("eat in"), default=True)
    offers_takeaway = models.BooleanField(_("takeaway"), default=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
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
            raise ValidationError(
                {"time_zone": _("Unknown time zone '%(zone)s'.") % {"zone": self.time_zone}}
            ) from None


class StaffMember(models.Model):
    """Which store a kitchen or cashier login works in (managers may have none: they see every store)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_member", verbose_name=_("user")
    )
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="staff", verbose_name=_("store"))

    class Meta:
        verbose_name = _("staff member")
        verbose_name_plural = _("staff members")

    def __str__(self) -> str:
        return f"{self.user} @ {self.store}"


class Category(models.Model):
    name = models.CharField(_("name"), max_length=80, unique=True)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    position = models.PositiveSmallIntegerField(
        _("position"), default=0, help_text=_("Order on the kiosk menu, smallest first.")
    )
    # part of the menu's stamp (selectors.menu_stamp)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["position", "name"]
        verbose_name = _("category")
        verbose_name_plural = _("categories")

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    class Kind(models.TextChoices):
        ITEM = "item", _("Item")
        COMBO = "combo", _("Combo")

    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="products", verbose_name=_("category")
    )
    kind = models.CharField(
        _("kind"),
        max_length=10,
        choices=Kind.choices,
        default=Kind.ITEM,
        help_text=_("A combo's option groups are its slots; each option of a slot is a product."),
    )
    name = models.CharField(_("name"), max_length=120)
    description = models.TextField(_("description"), blank=True)
    price = models.DecimalField(_("price"), **MONEY, validators=[MinValueValidator(Decimal("0.01"))])
    image_url = models.URLField(_("image URL"), max_length=500, blank=True)
    active = models.BooleanField(_("active"), default=True)
    stock = models.PositiveIntegerField(
        _("stock"), null=True, blank=True, help_text=_("Units left to sell. Empty means unlimited (made to order).")
    )
    suggestions = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        verbose_name=_("suggestions"),
        help_text=_("Offered with this product on the kiosk (upsell)."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
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

    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="option_groups", verbose_name=_("product")
    )
    name = models.CharField(_("name"), max_length=80)
    min_choices = models.PositiveSmallIntegerField(_("minimum choices"), default=0)
    max_choices = models.PositiveSmallIntegerField(_("maximum choices"), default=1)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("option group")
        verbose_name_plural = _("option groups")
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

    group = models.ForeignKey(OptionGroup, on_delete=models.CASCADE, related_name="options", verbose_name=_("group"))
    name = models.CharField(_("name"), max_length=80)
    price = models.DecimalField(
        _("extra price"), **MONEY, default=Decimal("0.00"), validators=[MinValueValidator(Decimal("0.00"))]
    )
    product = models.ForeignKey(
        Product,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("product"),
        help_text=_("Combo slots only."),
    )
    active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("option")
        verbose_name_plural = _("options")
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
            raise ValidationError({"product": _("A combo's slot choice names the product chosen.")})
        if not is_combo and self.product_id is not None:
            raise ValidationError({"product": _("Only a combo's slots name products; leave it empty.")})
        part_kind = (
            self.product_id and Product.objects.filter(pk=self.product_id).values_list("kind", flat=True).first()
        )
        if part_kind == Product.Kind.COMBO:
            raise ValidationError({"product": _("A combo's part is an item, not another combo.")})


class Customer(models.Model):
    """Someone who typed a CPF at a kiosk. Past the retention period (CUSTOMER_RETENTION_DAYS after the last
    order) `orders.privacy` anonymises it: CPF, name and e-mail gone, `anonymised_at` set, the orders kept."""

    # NULL only once anonymised (the constraint below): nobody's CPF matches it again.
    cpf = models.CharField("CPF", max_length=11, unique=True, null=True, validators=[validate_cpf])
    name = models.CharField(_("name"), max_length=120, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    anonymised_at = models.DateTimeField(_("anonymised at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.CheckConstraint(
                condition=Q(anonymised_at__isnull=True, cpf__isnull=False)
                | Q(anonymised_at__isnull=False, cpf__isnull=True, name="", email=""),
                name="customer_has_cpf_unless_anonymised",
            )
        ]

    def __str__(self) -> str:
        if self.anonymised_at:
            return gettext("Anonymised customer #%(id)s") % {"id": self.pk}
        return f"{self.name or _('Customer')} ({mask_cpf(self.cpf)})"


class Terminal(models.Model):
    """A kiosk device, which is also a Mercado Pago point of sale."""

    name = models.CharField(_("name"), max_length=80)
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="terminals", verbose_name=_("store"))
    external_pos_id = models.CharField(
        _("Mercado Pago external POS id"),
        max_length=40,
        unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9]+$", _("Use letters and digits only."))],
        help_text=_("The point of sale's external id registered in Mercado Pago (letters and digits)."),
    )
    active = models.BooleanField(_("active"), default=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="terminal",
        verbose_name=_("kiosk login"),
        help_text=_("The kiosk login (group 'kiosk') this device signs in with."),
    )

    class Meta:
        verbose_name = _("terminal")
        verbose_name_plural = _("terminals")
        ordering = ["store__name", "name"]

    def __str__(self) -> str:
        return f"{self.store} / {self.name}"


class Order(models.Model):
    class Status(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", _("Awaiting payment")
        RECEIVED = "received", _("Received (paid)")
        IN_PREPARATION = "in_preparation", _("In preparation")
        READY = "ready", _("Ready for pickup")
        COMPLETED = "completed", pgettext_lazy("order status", "Completed")
        CANCELLED = "cancelled", pgettext_lazy("order status", "Cancelled")

    class Dining(models.TextChoices):
        EAT_IN = "eat_in", _("Eat in")
        TAKEAWAY = "takeaway", _("Takeaway")

    class CancelReason(models.TextChoices):
        CUSTOMER = "customer", _("Customer gave up")
        PAYMENT_EXPIRED = "payment_expired", _("Payment expired")
        STAFF = "staff", _("Cancelled by staff")
        REFUNDED = "refunded", _("Refunded before delivery")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    business_date = models.DateField(
        _("business date"), help_text=_("Local (store) date the pickup number belongs to.")
    )
    number = models.PositiveIntegerField(
        _("number"), help_text=_("Pickup number shown to the customer; restarts every day.")
    )
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="orders", verbose_name=_("store"))
    terminal = models.ForeignKey(Terminal, on_delete=models.PROTECT, related_name="orders", verbose_name=_("terminal"))
    dining = models.CharField(_("eat in or takeaway"), max_length=10, choices=Dining.choices, blank=True)
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="orders", verbose_name=_("customer")
    )
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.AWAITING_PAYMENT)
    total = models.DecimalField(_("total"), **MONEY)
    cancel_reason = models.CharField(_("cancel reason"), max_length=20, choices=CancelReason.choices, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    # when it was paid: sales reports
    received_at = models.DateTimeField(_("paid at"), null=True, blank=True, db_index=True)
    in_preparation_at = models.DateTimeField(_("preparation started at"), null=True, blank=True)
    ready_at = models.DateTimeField(_("ready at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("handed over at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    cpf_on_receipt = models.BooleanField(
        "CPF na nota", default=False, help_text=_("The customer wants the CPF on the fiscal receipt.")
    )
    # How many domain events the order has had: the last one's `sequence` (kiosk/events).
    event_sequence = models.PositiveIntegerField(_("event sequence"), default=0, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
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
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items", verbose_name=_("order"))
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+", verbose_name=_("product"))
    product_name = models.CharField(_("product name"), max_length=120, help_text=_("Name at the time of the order."))
    unit_price = models.DecimalField(_("unit price"), **MONEY, help_text=_("Price at the time of the order."))
    quantity = models.PositiveSmallIntegerField(
        _("quantity"), validators=[MinValueValidator(1), MaxValueValidator(MAX_QUANTITY)]
    )
    note = models.CharField(_("note"), max_length=MAX_NOTE_LENGTH, blank=True)
    line_total = models.DecimalField(_("line total"), **MONEY)

    class Meta:
        verbose_name = _("order item")
        verbose_name_plural = _("order items")
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

    item = models.ForeignKey(OrderItem, on_delete=models.CASCADE, related_name="options", verbose_name=_("item"))
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="options", verbose_name=_("part of")
    )
    option = models.ForeignKey(Option, on_delete=models.PROTECT, related_name="+", verbose_name=_("option"))
    group_name = models.CharField(_("group name"), max_length=80)
    name = models.CharField(_("name"), max_length=80)
    product = models.ForeignKey(
        Product,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("product"),
        help_text=_("A combo's part."),
    )
    price = models.DecimalField(_("extra price"), **MONEY, help_text=_("Extra price of one, at the time of the order."))
    quantity = models.PositiveSmallIntegerField(_("quantity"), default=1, validators=[MinValueValidator(1)])

    class Meta:
        verbose_name = _("order item choice")
        verbose_name_plural = _("order item choices")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name}"


class PickupCounter(models.Model):
    """A store's pickup number sequence: one row per store, made with the store, reset when its business day
    changes.

    A row that always exists (rather than a row per day) means allocating a number never races to insert:
    it is one `SELECT ... FOR UPDATE` on a known row, which serialises that store's numbering only.
    """

    store = models.OneToOneField(
        Store, on_delete=models.CASCADE, related_name="pickup_counter", verbose_name=_("store")
    )
    day = models.DateField(_("day"))
    last_number = models.PositiveIntegerField(_("last number"), default=0)

    class Meta:
        verbose_name = _("pickup counter")
        verbose_name_plural = _("pickup counters")

    def __str__(self) -> str:
        return f"{self.store}: {self.day} {self.last_number}"
