"""Payment endpoints: checkout (the QR), money taken at the counter, the status a kiosk polls, and Mercado Pago's
notification URL."""

import logging

from django.db import DatabaseError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from kiosk.api import IDEMPOTENCY_HEADER, PROBLEM
from kiosk.idempotency import HEADER as IDEMPOTENCY_KEY_HEADER
from kiosk.idempotency import idempotent
from kiosk.openapi import problem
from kiosk.problems import DomainError, problem_json_response
from kiosk.roles import CASHIER, KIOSK, KITCHEN, MANAGER, allow, has_role
from orders import selectors as order_selectors
from orders.serializers import OrderSerializer, shown_to
from payments import selectors, webhooks
from payments.gateway import GatewayError, GatewayUnavailable
from payments.models import Payment, Refund
from payments.serializers import (
    CheckoutSerializer,
    CounterPaymentRequestSerializer,
    CounterPaymentSerializer,
    OrderPaymentSerializer,
    PaymentSerializer,
    PaymentStatusSerializer,
    RefundRequestSerializer,
    RefundResultSerializer,
    RefundSerializer,
)
from payments.services.checkout import order_pay_at_counter, payment_checkout
from payments.services.refunds import refund_request, request_key_for

logger = logging.getLogger(__name__)


class ProviderUnavailable(DomainError):
    status = 503
    code = "payment_provider_unavailable"


class NoPayment(DomainError):
    status = 404
    code = "no_payment"


class ProviderError(DomainError):
    status = 502
    code = "payment_provider_error"


def provider_problem(exc: GatewayError) -> DomainError:
    """Mercado Pago down: 503 with Retry-After. Mercado Pago said no: 502 with its code and message."""
    if isinstance(exc, GatewayUnavailable):
        return ProviderUnavailable(
            gettext("Mercado Pago is not answering right now; nothing was charged. Try again in a moment."),
            headers={"Retry-After": str(exc.retry_after)},
        )
    return ProviderError(
        gettext("Mercado Pago refused the request: %(reason)s") % {"reason": exc.message},
        provider_status=exc.status,
        provider_code=exc.code,
    )


class CheckoutView(APIView):
    permission_classes = [allow(KIOSK, MANAGER)]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=None,
        responses={
            201: CheckoutSerializer,
            200: CheckoutSerializer,
            403: problem("store_not_assigned"),
            404: PROBLEM,
            409: problem("order_not_payable", "payment_under_review", "terminal_not_ready"),
            502: problem("payment_provider_error"),
            503: problem("payment_provider_unavailable"),
        },
    )
    @idempotent(required=True, atomic=False)
    def post(self, request, order_id):
        """Creates the Mercado Pago dynamic QR for an unpaid order (201), or returns the valid one (200)."""
        order_selectors.order_for_user(user=request.user, order_id=order_id)
        try:
            payment, created = payment_checkout(order_id=order_id)
        except GatewayError as exc:
            raise provider_problem(exc) from None
        return Response({"payment": PaymentSerializer(payment).data}, status=201 if created else 200)


class CounterPaymentView(APIView):
    permission_classes = [allow(CASHIER, MANAGER)]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=CounterPaymentRequestSerializer,
        responses={
            201: CounterPaymentSerializer,
            403: problem("store_not_assigned"),
            409: problem("order_not_payable", "payment_under_review"),
            422: problem("counter_amount_mismatch"),
        },
    )
    @idempotent(required=True)
    def post(self, request, order_id):
        """Records money taken at the counter (cash, or a card machine outside Mercado Pago) for an unpaid
        order of the caller's store: exactly its total. The order goes to the kitchen as when Mercado Pago pays,
        and its open QR is cancelled. A retry with the same Idempotency-Key answers the same, and records nothing
        more."""
        order_selectors.order_for_user(user=request.user, order_id=order_id)  # another store's: 404
        serializer = CounterPaymentRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        payment = order_pay_at_counter(
            order_id=order_id,
            method=serializer.validated_data["method"],
            amount=serializer.validated_data["amount"],
            actor=request.user.get_username(),
        )
        return Response(
            {
                "payment": PaymentStatusSerializer(payment).data,
                "order": OrderSerializer(order_selectors.order_detail(order_id), context=shown_to(request.user)).data,
            },
            status=201,
        )


class OrderPaymentView(APIView):
    permission_classes = [allow(KIOSK, KITCHEN, CASHIER, MANAGER)]

    @extend_schema(
        responses={200: OrderPaymentSerializer, 403: problem("store_not_assigned"), 404: problem("no_payment")}
    )
    def get(self, request, order_id):
        """The payment the kiosk follows (the one that paid the order, else the latest) and the order's
        status, from our database only: cheap enough to poll every second. `under_review` means money came
        in but did not pay the order: send the customer to the counter."""
        order = order_selectors.order_status_for_user(user=request.user, order_id=order_id)
        payment = selectors.payment_for_kiosk(order)
        if payment is None:
            raise NoPayment(gettext("This order has no payment yet: POST .../checkout/ first."))
        data = PaymentStatusSerializer(payment).data
        data["qr_data"] = payment.qr_data if payment.status == Payment.Status.PENDING else None
        return Response({"payment": data, "order": {"id": order.pk, "number": order.number, "status": order.status}})


@csrf_exempt
def mercadopago_webhook(request):
    """Mercado Pago's notification URL. Answers fast: 200 once the delivery is safely stored (and applied,
    when Mercado Pago answers our fetch), 401 for a bad signature, 5xx only if we could not store it."""
    if request.method != "POST":
        return problem_json_response(status=405, code="method_not_allowed", detail="Notifications are POSTed.")
    try:
        answer = webhooks.receive(request)
    except DatabaseError:
        logger.exception("could not store a Mercado Pago notification")
        return problem_json_response(status=503, code="not_stored", detail="Could not store the notification.")
    if answer.status != 200:
        response = problem_json_response(status=answer.status, code=answer.code, detail=answer.detail)
        if answer.retry_after:
            response["Retry-After"] = str(answer.retry_after)
        return response
    return JsonResponse({"status": "received", "delivery": answer.delivery.pk})


class CanRefund(BasePermission):
    """Managers holding `payments.refund_payment` (given to the manager group by a migration)."""

    message = _("Only managers with the refund permission may give money back.")

    def has_permission(self, request, view) -> bool:
        return has_role(request.user, MANAGER) and request.user.has_perm("payments.refund_payment")


class RefundFailed(DomainError):
    status = 502
    code = "payment_provider_error"


class PaymentRefundsView(APIView):
    permission_classes = [CanRefund]

    @extend_schema(responses={200: RefundSerializer(many=True), 403: PROBLEM, 404: PROBLEM})
    def get(self, request, payment_id):
        """The payment's refunds, newest first, with where each stands at Mercado Pago."""
        payment = get_object_or_404(Payment, pk=payment_id)
        return Response(RefundSerializer(payment.refunds.order_by("-created_at", "-id"), many=True).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=RefundRequestSerializer,
        responses={
            201: RefundResultSerializer,
            202: RefundResultSerializer,
            400: problem("refund_amount_invalid"),
            409: problem("refund_not_allowed"),
            502: problem("payment_provider_error"),
            503: problem("payment_provider_unavailable"),
        },
    )
    @idempotent(required=True, atomic=False)
    def post(self, request, payment_id):
        """Refunds all that is refundable (no amount) or part of it, through Mercado Pago.

        202: Mercado Pago took it (or will be asked again: `requested`) and confirms it later; its amount is
        reserved meanwhile. 201: already confirmed. A retry with the same Idempotency-Key continues the same
        refund, also after a 503 or a timeout."""
        payment = get_object_or_404(Payment, pk=payment_id)
        serializer = RefundRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request_key_for(caller=f"user-{request.user.pk}", key=request.headers[IDEMPOTENCY_KEY_HEADER])
        try:
            refund = refund_request(
                payment_id=payment.pk,
                amount=serializer.validated_data.get("amount"),
                reason=serializer.validated_data["reason"],
                actor=request.user.get_username(),
                request_key=key,
            )
        except GatewayUnavailable as exc:
            problem = provider_problem(exc)
            problem.detail = gettext(
                "Mercado Pago is not answering right now. The refund is held (its amount reserved) and retried "
                "automatically; retrying with the same Idempotency-Key continues it."
            )
            problem.extra["refund_id"] = exc.refund_id
            raise problem from None
        except GatewayError as exc:
            raise provider_problem(exc) from None
        if refund.status == Refund.Status.FAILED:
            raise RefundFailed(
                gettext("Mercado Pago refused this refund: %(reason)s") % {"reason": refund.error}, refund_id=refund.pk
            )
        payment.refresh_from_db()
        return Response(
            {"refund": RefundSerializer(refund).data, "payment": PaymentStatusSerializer(payment).data},
            status=201 if refund.status == Refund.Status.SUCCEEDED else 202,
        )
