"""Loads the demo menu, a kiosk terminal and the demo users. For `make run` only: never in production."""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orders.models import Category, Product, StaffMember, Store, Terminal

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

STORES = [
    # slug, name, address, opening hours, eat in, takeaway
    ("loja-centro", "Loja Centro", "Rua XV de Novembro, 100 - Centro, Curitiba - PR", "Seg-Dom 10h-23h", True, True),
    ("loja-aeroporto", "Loja Aeroporto", "Av. Rocha Pombo, s/n - Aeroporto, São José dos Pinhais - PR",
     "Todos os dias 6h-22h", False, True),
]  # fmt: skip

USERS = [
    # username, group, is_staff, store
    ("kiosk1", "kiosk", False, "loja-centro"),
    ("kiosk2", "kiosk", False, "loja-aeroporto"),
    ("kitchen1", "kitchen", True, "loja-centro"),  # staff: the kitchen sees orders in the admin
    ("manager1", "manager", True, None),  # every store
]

TERMINALS = [
    # Mercado Pago POS id, name, store, login
    ("KIOSK001", "Totem 1", "loja-centro", "kiosk1"),
    ("KIOSK002", "Totem Aeroporto 1", "loja-aeroporto", "kiosk2"),
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

        stores = {}
        for slug, name, address, hours, eat_in, takeaway in STORES:
            stores[slug], _ = Store.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "address": address,
                    "opening_hours": hours,
                    "offers_eat_in": eat_in,
                    "offers_takeaway": takeaway,
                },
            )

        users = {}
        for username, group, is_staff, store in USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"is_staff": is_staff})
            if created:
                user.set_password(username)
                user.save()
            user.groups.add(Group.objects.get_or_create(name=group)[0])
            if store and group != "kiosk":
                StaffMember.objects.get_or_create(user=user, defaults={"store": stores[store]})
            users[username] = user
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", "admin")

        for pos_id, name, store, login in TERMINALS:
            Terminal.objects.get_or_create(
                external_pos_id=pos_id, defaults={"name": name, "store": stores[store], "user": users[login]}
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {Category.objects.count()} categories, {Product.objects.count()} products, "
                "stores loja-centro (terminal KIOSK001, kiosk1) and loja-aeroporto (KIOSK002, kiosk2), "
                f"users {', '.join(u for u, *_ in USERS)}, admin."
            )
        )
