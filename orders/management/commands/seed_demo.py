"""Loads the demo menu, a kiosk terminal and the demo users. For `make run` only: never in production."""

from decimal import Decimal
from urllib.parse import urljoin

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orders.models import Category, Option, OptionGroup, Product, StaffMember, Store, Terminal

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

# Added after the first menu, so that the demo's first product ids stay those the README shows.
MORE_ITEMS = {
    ("Acompanhamento", "acompanhamento", 2): [("Batata frita grande", "Porção de 250 g.", "16.90", None)],
}

# Option groups: name, min choices, max choices, [(option, extra price)].
ADICIONAIS = ("Adicionais", 0, 3, [("Bacon", "4.00"), ("Queijo extra", "3.00")])
RETIRAR = ("Retirar", 0, 2, [("Cebola", "0.00"), ("Picles", "0.00")])
PONTO = ("Ponto da carne", 1, 1, [("Ao ponto", "0.00"), ("Bem passado", "0.00")])
OPTION_GROUPS = {
    "X-Burger": [ADICIONAIS, RETIRAR],
    "X-Salada": [ADICIONAIS, RETIRAR],
    "X-Bacon": [PONTO, ADICIONAIS, RETIRAR],
}

# Combos: (category), [(name, description, price, slots)]; a slot is (name, min, max, [(choice, extra, product)]).
COMBOS = {
    ("Combos", "combos", 0): [
        ("Combo X-Burger", "X-Burger, acompanhamento e bebida; sobremesa se quiser.", "39.90", [
            ("Lanche", 1, 1, [("X-Burger", "0.00", "X-Burger")]),
            ("Acompanhamento", 1, 1, [
                ("Batata média", "0.00", "Batata frita média"),
                ("Batata grande", "2.00", "Batata frita grande"),
                ("Onion rings", "1.50", "Onion rings"),
            ]),
            ("Bebida", 1, 1, [
                ("Refrigerante", "0.00", "Refrigerante lata"),
                ("Suco de laranja", "2.50", "Suco de laranja"),
                ("Água", "0.00", "Água mineral"),
            ]),
            ("Sobremesa", 0, 1, [
                ("Sundae", "4.00", "Sundae de chocolate"),
                ("Torta de maçã", "3.00", "Torta de maçã"),
            ]),
        ]),
    ],
}  # fmt: skip

# Upsell: what the kiosk offers with each burger.
SUGGESTIONS = {
    burger: ["Refrigerante lata", "Batata frita média"]
    for burger in ("X-Burger", "X-Salada", "X-Bacon", "Veggie Burger")
}

# Pictures for the kiosk (static/screens/menu/, drawn for the demo). Product.image_url is an absolute URL, as a
# menu on a CDN would give: here, this site's own static files at SITE_URL.
PICTURES = {
    "X-Burger": "burger.svg",
    "X-Salada": "burger-salad.svg",
    "X-Bacon": "burger-bacon.svg",
    "Veggie Burger": "burger-veggie.svg",
    "Batata frita média": "fries.svg",
    "Batata frita grande": "fries-large.svg",
    "Onion rings": "onion-rings.svg",
    "Refrigerante lata": "soda.svg",
    "Suco de laranja": "orange-juice.svg",
    "Água mineral": "water.svg",
    "Sundae de chocolate": "sundae.svg",
    "Torta de maçã": "apple-pie.svg",
    "Combo X-Burger": "combo.svg",
}
PICTURES_PATH = "screens/menu/"

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
    ("cashier1", "cashier", True, "loja-centro"),  # staff: takes cash and card at the counter, also in the admin
    ("manager1", "manager", True, None),  # every store
]

TERMINALS = [
    # Mercado Pago POS id, name, store, login
    ("KIOSK001", "Totem 1", "loja-centro", "kiosk1"),
    ("KIOSK002", "Totem Aeroporto 1", "loja-aeroporto", "kiosk2"),
]


class Command(BaseCommand):
    help = "Create the demo menu, stores, terminals and users (kiosk1, kiosk2, kitchen1, cashier1, manager1, admin). Keeps existing data."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Run even with DEBUG off (never in production).")

    @transaction.atomic
    def handle(self, *args, force=False, **options):
        if not (settings.DEBUG or force):
            raise CommandError("seed_demo creates users with known passwords; it runs only with DEBUG on.")
        self._menu()

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
                f"Demo data ready: {Category.objects.count()} categories, {Product.objects.count()} products "
                f"({Product.objects.filter(kind=Product.Kind.COMBO).count()} combos), "
                "stores loja-centro (terminal KIOSK001, kiosk1) and loja-aeroporto (KIOSK002, kiosk2), "
                f"users {', '.join(u for u, *_ in USERS)}, admin."
            )
        )

    def _menu(self) -> None:
        """Items, their option groups, combos with their slots, and suggestions; only what is missing."""
        products = {}
        for menu in (MENU, MORE_ITEMS):
            for (name, slug, position), items in menu.items():
                category = self._category(name, slug, position)
                for product_name, description, price, stock in items:
                    products[product_name], _ = Product.objects.get_or_create(
                        category=category,
                        name=product_name,
                        defaults={"description": description, "price": Decimal(price), "stock": stock},
                    )
        for product_name, groups in OPTION_GROUPS.items():
            for position, (group_name, least, most, options) in enumerate(groups):
                group = self._group(products[product_name], group_name, least, most, position)
                for n, (option_name, price) in enumerate(options):
                    Option.objects.get_or_create(
                        group=group, name=option_name, defaults={"price": Decimal(price), "position": n}
                    )
        for (name, slug, position), combos in COMBOS.items():
            category = self._category(name, slug, position)
            for combo_name, description, price, slots in combos:
                combo, _ = Product.objects.get_or_create(
                    category=category,
                    name=combo_name,
                    defaults={"kind": Product.Kind.COMBO, "description": description, "price": Decimal(price)},
                )
                for slot_position, (slot_name, least, most, choices) in enumerate(slots):
                    slot = self._group(combo, slot_name, least, most, slot_position)
                    for n, (choice, price_extra, part) in enumerate(choices):
                        Option.objects.get_or_create(
                            group=slot,
                            name=choice,
                            defaults={"price": Decimal(price_extra), "product": products[part], "position": n},
                        )
        self._pictures()
        for product_name, suggested in SUGGESTIONS.items():
            product = products[product_name]
            if not product.suggestions.exists():  # a manager's own choice stays
                product.suggestions.add(*(products[name] for name in suggested))

    @staticmethod
    def _pictures() -> None:
        """A picture for each demo product without one, or with one of ours at an older SITE_URL; a manager's
        own picture stays."""
        base = urljoin(f"{settings.SITE_URL}/", settings.STATIC_URL) + PICTURES_PATH
        for product in Product.objects.filter(name__in=PICTURES):
            url = base + PICTURES[product.name]
            ours = product.image_url.endswith(f"/{PICTURES_PATH}{PICTURES[product.name]}")
            if product.image_url != url and (not product.image_url or ours):
                product.image_url = url
                product.save(update_fields=["image_url", "updated_at"])  # updated_at: the menu's ETag changes

    @staticmethod
    def _category(name: str, slug: str, position: int) -> Category:
        return Category.objects.get_or_create(slug=slug, defaults={"name": name, "position": position})[0]

    @staticmethod
    def _group(product: Product, name: str, least: int, most: int, position: int) -> OptionGroup:
        return OptionGroup.objects.get_or_create(
            product=product, name=name, defaults={"min_choices": least, "max_choices": most, "position": position}
        )[0]
