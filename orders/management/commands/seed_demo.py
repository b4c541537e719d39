"""Loads the demo menu, a kiosk terminal and the demo users. For `make run` only: never in production."""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orders.models import Category, Product, Terminal

MENU = {
    ("Lanche", "lanche", 1): [
        ("X-Burger", "Pão, hambúrguer 120 g, queijo e molho da casa.", "25.90", None),
        ("X-Salada", "Hambúrguer 120 g, queijo, alface, tomate e maionese.", "27.90", None),
        ("X-Bacon", "Hambúrguer 120 g, queijo e bacon crocante.", "31.50", None),
        ("Veggie Burger", "Hambúrguer de grão-de-bico, rúcula e tomate seco.", "29.90", 20),
    ],
    ("Acompanhamento", "acompanhamento", 2): [
        ("Batata frita média", "Porção de 150 g.", "12.90", None),
        ("Onion rings", "Anéis de cebola empanados, 10 unidades.", "14.50", 30),
    ],
    ("Bebida", "bebida", 3): [
        ("Refrigerante lata", "350 ml.", "6.90", None),
        ("Suco de laranja", "Natural, 400 ml.", "9.90", 15),
        ("Água mineral", "500 ml.", "4.50", None),
    ],
    ("Sobremesa", "sobremesa", 4): [
        ("Sundae de chocolate", "Sorvete de baunilha com calda de chocolate.", "10.90", None),
        ("Torta de maçã", "Fatia com canela.", "8.90", 12),
    ],
}

USERS = [
    # username, group, is_staff
    ("kiosk1", "kiosk", False),
    ("kitchen1", "kitchen", True),  # staff: the cashier sees orders and payments in the admin
    ("manager1", "manager", True),
]


class Command(BaseCommand):
    help = "Create the demo menu, terminal and users (kiosk1, kitchen1, manager1, admin). Keeps existing data."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Run even with DEBUG off (never in production).")

    @transaction.atomic
    def handle(self, *args, force=False, **options):
        if not (settings.DEBUG or force):
            raise CommandError("seed_demo creates users with known passwords; it runs only with DEBUG on.")
        for (name, slug, position), products in MENU.items():
            category, _ = Category.objects.get_or_create(slug=slug, defaults={"name": name, "position": position})
            for product_name, description, price, stock in products:
                Product.objects.get_or_create(
                    category=category,
                    name=product_name,
                    defaults={"description": description, "price": Decimal(price), "stock": stock},
                )

        users = {}
        for username, group, is_staff in USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"is_staff": is_staff})
            if created:
                user.set_password(username)
                user.save()
            user.groups.add(Group.objects.get(name=group))
            users[username] = user
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", "admin")

        Terminal.objects.get_or_create(
            external_pos_id="KIOSK001",
            defaults={"name": "Totem 1", "store": "Loja Centro", "user": users["kiosk1"]},
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {Category.objects.count()} categories, {Product.objects.count()} products, "
                "terminal KIOSK001 (kiosk1), users kiosk1/kitchen1/manager1/admin."
            )
        )
