"""REST endpoints for kiosks, the kitchen, cashiers and managers. Thin: parse, call one service or selector, shape."""

import datetime

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from kiosk.api import (
    IDEMPOTENCY_HEADER,
    ISO_DATE,
    OPTIONAL_IDEMPOTENCY_HEADER,
    PROBLEM,
    BoundedLimitOffsetPagination,
    CPFLookupThrottle,
    PickupBoardThrottle,
    cache_key,
    cached_json_response,
    conditional_response,
)
from kiosk.idempotency import idempotent
from kiosk.openapi import CPF_SCHEMA, problem
from kiosk.problems import Invalid
from kiosk.roles import CASHIER, KIOSK, KITCHEN, MANAGER, allow, has_role, is_staff_role, roles_of, works_in_one_store
from orders import selectors, services
from orders.models import Customer, Option, Order, Terminal
from orders.serializers import (
    CategorySerializer,
    CPFField,
    CustomerIdentifySerializer,
    CustomerSerializer,
    KitchenOrderSerializer,
    KitchenStatusSerializer,
    MeSerializer,
    OptionDetailSerializer,
    OptionWriteSerializer,
    OrderCreateSerializer,
    OrderSerializer,
    PickupBoardSerializer,
    ProductSerializer,
    ProductWriteSerializer,
    shown_to,
)
from payments.services.checkout import order_cancel_unpaid

ANY_ROLE = allow(KIOSK, KITCHEN, CASHIER, MANAGER)


# --- Menu -----------------------------------------------------------------------------------------


MENU_CONDITIONAL = "With `If-None-Match` holding the ETag of the last answer: `304 Not Modified` and no body."


class CategoryListView(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(responses={200: CategorySerializer(many=True), 304: None}, description=MENU_CONDITIONAL)
    def get(self, request):
        return conditional_response(request, CategorySerializer(selectors.categories_list(), many=True).data)


class ProductListView(APIView):
    def get_permissions(self):
        return [allow(MANAGER)()] if self.request.method == "POST" else [ANY_ROLE()]

    @extend_schema(
        parameters=[OpenApiParameter("category", OpenApiTypes.STR, description="Category slug")],
        responses={200: ProductSerializer(many=True), 304: None},
        description=MENU_CONDITIONAL,
    )
    def get(self, request):
        """The menu, rendered once per state of the menu (menu_stamp) and caller's view of it (managers see
        the whole catalogue): polling kiosks cost one query beyond their login, or a 304."""
        category = request.query_params.get("category")
        audience = "catalogue" if has_role(request.user, MANAGER) else "menu"

        def build():
            products = list(selectors.products_for(user=request.user, category_slug=category))
            return ProductSerializer(products, many=True).data, selectors.menu_last_modified(products)

        key = cache_key("menu", audience, category or "")
        return cached_json_response(request, key=key, stamp=selectors.menu_stamp(), build=build)

    @extend_schema(
        parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
        request=ProductWriteSerializer,
        responses={201: ProductSerializer, 400: PROBLEM, 403: PROBLEM},
    )
    @idempotent(required=False)
    def post(self, request):
        serializer = ProductWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.product_create(**serializer.validated_data)
        return Response(ProductSerializer(product).data, status=status.HTTP_201_CREATED)


class ProductDetailView(APIView):
    def get_permissions(self):
        return [ANY_ROLE()] if self.request.method == "GET" else [allow(MANAGER)()]

    def _product(self, request, product_id):
        return get_object_or_404(selectors.products_for(user=request.user), pk=product_id)

    @extend_schema(responses={200: ProductSerializer, 304: None, 404: PROBLEM}, description=MENU_CONDITIONAL)
    def get(self, request, product_id):
        product = self._product(request, product_id)
        return conditional_response(
            request, ProductSerializer(product).data, last_modified=selectors.menu_last_modified([product])
        )

    @extend_schema(request=ProductWriteSerializer, responses={200: ProductSerializer, 400: PROBLEM})
    def patch(self, request, product_id):
        self._product(request, product_id)
        serializer = ProductWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.product_update(product_id=product_id, **serializer.validated_data)
        return Response(ProductSerializer(self._product(request, product_id)).data)

    @extend_schema(responses={204: None, 404: PROBLEM})
    def delete(self, request, product_id):
        """Takes the product off the menu (it stays in old orders)."""
        self._product(request, product_id)
        services.product_deactivate(product_id=product_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OptionDetailView(APIView):
    """One option of a product's group; managers switch it off when it runs out ("sem bacon hoje")."""

    permission_classes = [allow(MANAGER)]

    def _option(self, option_id):
        return get_object_or_404(Option.objects.select_related("group", "product"), pk=option_id)

    @extend_schema(responses={200: OptionDetailSerializer, 404: PROBLEM})
    def get(self, request, option_id):
        return Response(OptionDetailSerializer(self._option(option_id)).data)

    @extend_schema(request=OptionWriteSerializer, responses={200: OptionDetailSerializer, 400: PROBLEM})
    def patch(self, request, option_id):
        self._option(option_id)
        serializer = OptionWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.option_update(option_id=option_id, **serializer.validated_data)
        return Response(OptionDetailSerializer(self._option(option_id)).data)


# --- Customers ------------------------------------------------------------------------------------


class CustomerView(APIView):
    permission_classes = [allow(KIOSK, MANAGER)]
    throttle_classes = [CPFLookupThrottle]

    @extend_schema(
        parameters=[OpenApiParameter("cpf", CPF_SCHEMA, required=True, description="CPF, any common format")],
        responses={200: CustomerSerializer, 400: problem("validation_error"), 404: problem("not_found")},
    )
    def get(self, request):
        """Looks a customer up by CPF."""
        raw = request.query_params.get("cpf")
        if not raw:
            raise Invalid(
                gettext("Pass ?cpf= to look a customer up."), errors={"cpf": [gettext("This parameter is required.")]}
            )
        try:
            cpf = CPFField().run_validation(raw)
        except ValidationError as exc:
            raise Invalid(gettext("Enter a valid CPF."), errors={"cpf": exc.detail}) from None
        customer = get_object_or_404(Customer, cpf=cpf)
        return Response(CustomerSerializer(customer, context=shown_to(request.user)).data)

    @extend_schema(
        parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
        request=CustomerIdentifySerializer,
        responses={200: CustomerSerializer, 201: CustomerSerializer, 400: PROBLEM},
    )
    @idempotent(required=False)
    def post(self, request):
        """Identify-or-create by CPF: 200 for a known customer, 201 for a new one."""
        serializer = CustomerIdentifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer, created = services.customer_identify(**serializer.validated_data)
        return Response(
            CustomerSerializer(customer, context=shown_to(request.user)).data, status=201 if created else 200
        )


# --- Orders ---------------------------------------------------------------------------------------


def _terminal_of(user) -> Terminal:
    terminal = Terminal.objects.select_related("store").filter(user=user).first()
    if terminal is None:
        raise PermissionDenied(gettext("This login is not linked to a kiosk terminal."))
    return terminal


MAX_PICKUP_NUMBER = 2_147_483_647  # the column's largest value: beyond it, no order has the number
STORE_PARAMETER = OpenApiParameter(
    "store", OpenApiTypes.STR, description="Store slug (managers; kitchen and cashier logins always get their own)"
)


def _store_param(request):
    slug = request.query_params.get("store")
    return selectors.store_by_slug(slug) if slug else None


def _number_param(request) -> int | None:
    raw = request.query_params.get("number")
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PICKUP_NUMBER:
        raise Invalid(
            gettext("Unknown pickup number '%(number)s'.") % {"number": raw[:20]},
            errors={"number": [gettext("A pickup number, e.g. 12.")]},
        )
    return int(raw)


def _date_param(request, name: str):
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        if not ISO_DATE.fullmatch(raw):
            raise ValueError
        return datetime.date.fromisoformat(raw)
    except ValueError:
        raise Invalid(
            gettext("'%(name)s' must be a date as YYYY-MM-DD.") % {"name": name},
            errors={name: [gettext("A date as YYYY-MM-DD.")]},
        ) from None


class OrderListView(APIView):
    pagination_class = BoundedLimitOffsetPagination  # also what the schema documents: a page, not an array

    def get_permissions(self):
        return [allow(KIOSK)()] if self.request.method == "POST" else [ANY_ROLE()]

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=[s for s, _ in Order.Status.choices]),
            OpenApiParameter(
                "number",
                {"type": "integer", "minimum": 1, "maximum": MAX_PICKUP_NUMBER},
                description="Pickup number (of `business_date`: today in each store's zone)",
            ),
            OpenApiParameter("business_date", OpenApiTypes.DATE, description="The store's local date, YYYY-MM-DD"),
            STORE_PARAMETER,
        ],
        responses={
            200: OrderSerializer(many=True),
            400: problem("validation_error"),
            403: problem("store_not_assigned"),
        },
    )
    def get(self, request):
        """Orders, newest first: a kiosk sees its own terminal's, kitchen staff and cashiers their store's,
        managers every store's. `?number=12` finds today's order 12 (the counter looking up a kiosk order)."""
        orders = selectors.orders_visible_to(user=request.user, store=_store_param(request))
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in Order.Status.values:
                raise Invalid(
                    gettext("Unknown status '%(status)s'.") % {"status": wanted},
                    errors={"status": [gettext("Use one of %(statuses)s.") % {"statuses": Order.Status.values}]},
                )
            orders = orders.filter(status=wanted)
        number, business_date = _number_param(request), _date_param(request, "business_date")
        if number is not None:
            orders = selectors.orders_numbered(orders, number=number, business_date=business_date)
        elif business_date is not None:
            orders = orders.filter(business_date=business_date)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(OrderSerializer(page, many=True, context=shown_to(request.user)).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=OrderCreateSerializer,
        responses={
            201: OrderSerializer,
            400: problem("unknown_product", "invalid_options", "invalid_dining"),
            403: problem("terminal_inactive"),
            409: problem("out_of_stock", "product_unavailable"),
            422: problem("order_total_too_large"),
        },
    )
    @idempotent(required=True)
    def post(self, request):
        """Places an order from this kiosk's terminal. Prices come from the menu."""
        terminal = _terminal_of(request.user)
        serializer = OrderCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        order = services.order_place(
            terminal=terminal,
            items=serializer.item_requests(),
            customer_cpf=data.get("customer_cpf") or None,
            cpf_on_receipt=data.get("cpf_on_receipt", False),
            dining=data.get("dining", ""),
        )
        return Response(
            OrderSerializer(order, context=shown_to(request.user)).data,  # as placed, from memory
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/orders/{order.pk}/"},
        )


class OrderDetailView(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(responses={200: OrderSerializer, 403: problem("store_not_assigned"), 404: PROBLEM})
    def get(self, request, order_id):
        return Response(
            OrderSerializer(
                selectors.order_for_user(user=request.user, order_id=order_id), context=shown_to(request.user)
            ).data
        )


class OrderCancelView(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(
        request=None,
        responses={
            200: OrderSerializer,
            403: problem("store_not_assigned"),
            404: PROBLEM,
            409: problem("invalid_transition", "payment_under_review"),
        },
    )
    def post(self, request, order_id):
        """Cancels an unpaid order (the customer gave up, or staff), and its QR at Mercado Pago.
        Paid orders are refunded instead."""
        selectors.order_for_user(user=request.user, order_id=order_id)
        reason = Order.CancelReason.STAFF if is_staff_role(request.user) else Order.CancelReason.CUSTOMER
        order_cancel_unpaid(order_id=order_id, reason=reason, actor=request.user.get_username())
        return Response(OrderSerializer(selectors.order_detail(order_id), context=shown_to(request.user)).data)


# --- Kitchen --------------------------------------------------------------------------------------


KITCHEN_QUEUE_LIMIT = 200
KITCHEN_LIMIT_PARAMETER = OpenApiParameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 500},
    description=f"At most this many cards (1-500, default {KITCHEN_QUEUE_LIMIT})",
)


class KitchenQueueView(APIView):
    permission_classes = [allow(KITCHEN, MANAGER)]

    @extend_schema(
        parameters=[STORE_PARAMETER, KITCHEN_LIMIT_PARAMETER],
        responses={
            200: KitchenOrderSerializer(many=True),
            304: None,
            400: problem("validation_error"),
            403: problem("store_not_assigned"),
        },
        description="`X-Total-Count` says how many orders the queue holds (more than the cards when capped). "
        + MENU_CONDITIONAL,
    )
    def get(self, request):
        """The store's paid, unfinished orders as kitchen cards: ready first, then in preparation, then
        received; oldest first within each. A kitchen login gets its own store's; a manager every store's, or
        `?store=`'s. Rendered once per state of the queue: a display polling every second with `If-None-Match`
        gets a 304 for two cheap queries while nothing moved."""
        store, limit = _store_param(request), _limit_param(request)
        total, stamp = selectors.kitchen_queue_stamp(user=request.user, store=store)
        # Whose queue: the login's own store (kitchen) or every store (manager), narrowed by ?store=.
        own = selectors.staff_store(request.user) if works_in_one_store(request.user) else None
        scope = (own.pk if own else "all", store.pk if store else "-")

        def build():
            queue = selectors.kitchen_queue(user=request.user, store=store, limit=limit)
            return KitchenOrderSerializer(queue, many=True).data, None

        response = cached_json_response(request, key=cache_key("kitchen", scope, limit), stamp=stamp, build=build)
        response["X-Total-Count"] = str(total)
        return response


def _limit_param(request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return KITCHEN_QUEUE_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise Invalid(
            gettext("Unknown limit '%(limit)s'.") % {"limit": raw[:20]},
            errors={"limit": [gettext("A number of cards from 1 to 500.")]},
        )
    return int(raw)


class KitchenStatusView(APIView):
    permission_classes = [allow(KITCHEN, MANAGER)]

    @extend_schema(
        request=KitchenStatusSerializer,
        responses={200: OrderSerializer, 403: problem("store_not_assigned"), 409: problem("invalid_transition")},
    )
    def post(self, request, order_id):
        selectors.order_for_user(user=request.user, order_id=order_id)
        serializer = KitchenStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.order_advance(order_id=order_id, status=serializer.validated_data["status"])
        return Response(OrderSerializer(selectors.order_detail(order_id), context=shown_to(request.user)).data)


class PickupBoardView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [PickupBoardThrottle]

    @extend_schema(
        parameters=[OpenApiParameter("store", OpenApiTypes.STR, description="Store slug; optional with one store")],
        responses={200: PickupBoardSerializer, 304: None, 400: problem("store_required"), 404: problem("not_found")},
    )
    def get(self, request):
        """One store's order numbers being prepared and ready for pickup. Public: no personal data.
        `?store=<slug>` picks the store; it may be left out only while there is one active store. The board is
        one small query: its ETag is a hash of the answer, so a TV polling with `If-None-Match` gets a 304
        exactly while the numbers stay the same."""
        board = selectors.pickup_board(selectors.store_for_board(request.query_params.get("store")))
        return conditional_response(request, board)


# --- Who is logged in -----------------------------------------------------------------------------


class MeView(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "store", OpenApiTypes.STR, description="Store slug: a manager's screen about one store gets that store"
            )
        ],
        responses={200: MeSerializer, 400: problem("validation_error")},
    )
    def get(self, request):
        """The login, its roles and the store its screens are about: a kitchen or cashier login's own, a kiosk's
        terminal's (null while it has none); a manager's is null (every store) unless `?store=` names one. The
        store says what it offers (`offers_eat_in`, `offers_takeaway`): a kiosk asks "eat in or take away?"
        only where it offers both (an order there needs `dining`). A kiosk login also gets its `terminal`
        (`id`, `name`); any other login, null."""
        named = _store_param(request)
        terminal = selectors.terminal_of_user(request.user)
        store = terminal.store if terminal else selectors.store_of_user(user=request.user, store=named)
        me = {
            "username": request.user.get_username(),
            "roles": sorted(roles_of(request.user)),
            "store": store,
            "terminal": terminal,
        }
        return Response(MeSerializer(me).data)
