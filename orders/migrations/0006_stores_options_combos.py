"""Several stores, options and combos, dining choice.

Existing data stays valid: every distinct terminal store name becomes a Store, terminals and orders point at
theirs, each store gets its own pickup counter (carrying on today's numbers), and existing products are items.
"""

import datetime
from decimal import Decimal

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils.text import slugify


def stores_from_terminals(apps, schema_editor):
    Store = apps.get_model("orders", "Store")
    Terminal = apps.get_model("orders", "Terminal")
    Order = apps.get_model("orders", "Order")
    PickupCounter = apps.get_model("orders", "PickupCounter")
    old_counter = PickupCounter.objects.filter(store__isnull=True).order_by("pk").first()
    for name in sorted(set(Terminal.objects.values_list("store_name", flat=True))):
        base = slugify(name)[:70] or "loja"
        slug, n = base, 1
        while Store.objects.filter(slug=slug).exists():
            n += 1
            slug = f"{base}-{n}"
        store = Store.objects.create(name=name[:80] or "Loja", slug=slug)
        Terminal.objects.filter(store_name=name).update(store=store)
    for store in Store.objects.all():
        Order.objects.filter(terminal__store=store).update(store=store)
        # Numbers already given today (old counter's day) continue in each store, never repeat.
        day = old_counter.day if old_counter else datetime.date(2000, 1, 1)
        last = (
            Order.objects.filter(store=store, business_date=day).aggregate(m=models.Max("number"))["m"] or 0
        )
        PickupCounter.objects.create(store=store, day=day, last_number=last)
    PickupCounter.objects.filter(store__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0005_order_cpf_on_receipt_order_event_sequence"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Store",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=80, unique=True)),
                ("slug", models.SlugField(max_length=80, unique=True)),
                ("address", models.CharField(blank=True, max_length=200)),
                (
                    "opening_hours",
                    models.CharField(blank=True, help_text='For people, e.g. "Seg-Dom 10h-23h".', max_length=200),
                ),
                (
                    "time_zone",
                    models.CharField(
                        default="America/Sao_Paulo",
                        help_text="Pickup numbers restart at this zone's midnight.",
                        max_length=60,
                    ),
                ),
                ("offers_eat_in", models.BooleanField(default=True, verbose_name="eat in")),
                ("offers_takeaway", models.BooleanField(default=True, verbose_name="takeaway")),
                ("active", models.BooleanField(default=True)),
            ],
            options={
                "ordering": ["name"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("offers_eat_in", True), ("offers_takeaway", True), _connector="OR"),
                        name="store_offers_a_dining_choice",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="StaffMember",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "store",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="staff", to="orders.store"
                    ),
                ),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="staff_member",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="product",
            name="kind",
            field=models.CharField(
                choices=[("item", "Item"), ("combo", "Combo")],
                default="item",
                help_text="A combo's option groups are its slots; each option of a slot is a product.",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="product",
            name="suggestions",
            field=models.ManyToManyField(
                blank=True, help_text="Offered with this product on the kiosk (upsell).", to="orders.product"
            ),
        ),
        migrations.CreateModel(
            name="OptionGroup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=80)),
                ("min_choices", models.PositiveSmallIntegerField(default=0)),
                ("max_choices", models.PositiveSmallIntegerField(default=1)),
                ("position", models.PositiveSmallIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "product",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="option_groups",
                        to="orders.product",
                    ),
                ),
            ],
            options={
                "ordering": ["position", "id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("max_choices__gte", 1), ("max_choices__gte", models.F("min_choices"))),
                        name="option_group_choices_range",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Option",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=80)),
                (
                    "price",
                    models.DecimalField(
                        decimal_places=2,
                        default=Decimal("0.00"),
                        max_digits=10,
                        validators=[django.core.validators.MinValueValidator(Decimal("0.00"))],
                    ),
                ),
                ("active", models.BooleanField(default=True)),
                ("position", models.PositiveSmallIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="options", to="orders.optiongroup"
                    ),
                ),
                (
                    "product",
                    models.ForeignKey(
                        blank=True,
                        help_text="Combo slots only.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="orders.product",
                    ),
                ),
            ],
            options={
                "ordering": ["position", "id"],
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("price__gte", 0)), name="option_price_not_negative")
                ],
            },
        ),
        migrations.CreateModel(
            name="OrderItemOption",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("group_name", models.CharField(max_length=80)),
                ("name", models.CharField(max_length=80)),
                (
                    "price",
                    models.DecimalField(
                        decimal_places=2, help_text="Extra price of one, at the time of the order.", max_digits=10
                    ),
                ),
                (
                    "quantity",
                    models.PositiveSmallIntegerField(
                        default=1, validators=[django.core.validators.MinValueValidator(1)]
                    ),
                ),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="options", to="orders.orderitem"
                    ),
                ),
                (
                    "option",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to="orders.option"
                    ),
                ),
                (
                    "parent",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="options",
                        to="orders.orderitemoption",
                    ),
                ),
                (
                    "product",
                    models.ForeignKey(
                        blank=True,
                        help_text="A combo's part.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="orders.product",
                    ),
                ),
            ],
            options={"ordering": ["id"]},
        ),
        # Terminals and orders belong to a store; numbers are per store and day.
        migrations.RenameField(model_name="terminal", old_name="store", new_name="store_name"),
        migrations.AddField(
            model_name="terminal",
            name="store",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="terminals", to="orders.store"
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="store",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="orders", to="orders.store"
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="dining",
            field=models.CharField(
                blank=True, choices=[("eat_in", "Eat in"), ("takeaway", "Takeaway")], default="", max_length=10
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="pickupcounter",
            name="store",
            field=models.OneToOneField(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="pickup_counter",
                to="orders.store",
            ),
        ),
        migrations.RunPython(stores_from_terminals, migrations.RunPython.noop),
        migrations.RemoveField(model_name="terminal", name="store_name"),
        migrations.AlterField(
            model_name="terminal",
            name="store",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="terminals", to="orders.store"
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="store",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="orders", to="orders.store"
            ),
        ),
        migrations.AlterField(
            model_name="pickupcounter",
            name="store",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="pickup_counter", to="orders.store"
            ),
        ),
        migrations.AlterModelOptions(name="terminal", options={"ordering": ["store__name", "name"]}),
        migrations.RemoveConstraint(model_name="order", name="order_number_unique_per_day"),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.UniqueConstraint(
                fields=("store", "business_date", "number"), name="order_number_unique_per_store_day"
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["store", "status", "created_at"], name="order_store_status_created"),
        ),
    ]
