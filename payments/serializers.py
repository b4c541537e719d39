"""Response shapes of the payments API. Money is a decimal string."""

import io

import segno
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kiosk.api import MoneyField, StrictCharField, StrictMixin
from orders.models import Order
from orders.serializers import OrderSerializer
from payments import selectors
from payments.models import Payment, Refund


@extend_schema_field(serializers.ChoiceField(choices=selectors.KIOSK_STATUSES))
class KioskStatusField(serializers.Field):
    """The payment's status as a kiosk must show it: `under_review` for money that did not pay the order."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, payment: Payment) -> str:
        return selectors.kiosk_status(payment)


class PaymentSerializer(serializers.ModelSerializer):
    """What the kiosk polls and shows: the QR to scan and the state of the money."""

    status = KioskStatusField()
    qr_svg = serializers.SerializerMethodField(
        help_text="The QR as an SVG document, ready to show: a viewBox and no fixed size, so it fills its box."
    )

    class Meta:
        model = Payment
        fields = [
            "id",
            "status",
            "amount",
            "paid_amount",
            "paid_at",
            "qr_data",
            "qr_svg",
            "expires_at",
            "provider_order_id",
            "method",
            "created_at",
        ]

    def get_qr_svg(self, payment: Payment) -> str | None:
        if not payment.qr_data or payment.status != Payment.Status.PENDING:
            return None
        buffer = io.BytesIO()
        # No width and height but a viewBox (omitsize): the screen draws it as large as its frame.
        segno.make(payment.qr_data, error="m").save(buffer, kind="svg", scale=6, border=2, xmldecl=False, omitsize=True)
        return buffer.getvalue().decode()


class PaymentStatusSerializer(serializers.ModelSerializer):
    """The cheap answer for polling: no QR rendering."""

    status = KioskStatusField()

    class Meta:
        model = Payment
        fields = ["id", "status", "method", "amount", "paid_amount", "paid_at", "expires_at", "provider_order_id"]


class _PolledPaymentSerializer(PaymentStatusSerializer):
    qr_data = serializers.CharField(allow_null=True, help_text="The QR payload while the payment is pending.")

    class Meta(PaymentStatusSerializer.Meta):
        fields = [*PaymentStatusSerializer.Meta.fields, "qr_data"]


class _PolledOrderSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Order.Status.choices)


class OrderPaymentSerializer(serializers.Serializer):
    """GET /orders/{id}/payment/ (documentation only: the view builds the dict itself)."""

    payment = _PolledPaymentSerializer()
    order = _PolledOrderSerializer()


class CounterPaymentRequestSerializer(StrictMixin, serializers.Serializer):
    """POST /api/v1/orders/{id}/counter-payment/: money a cashier took at the counter."""

    method = serializers.ChoiceField(
        choices=[(m.value, m.label) for m in (Payment.Method.CASH, Payment.Method.CARD_OUTSIDE)],
        help_text="cash, or card_outside (a card machine that is not Mercado Pago's)",
    )
    amount = MoneyField(help_text="What was taken: exactly the order's total (change for cash is not recorded).")


class CheckoutSerializer(serializers.Serializer):
    """The answer to a checkout (documentation only: the view builds the dict itself)."""

    payment = PaymentSerializer()


class CounterPaymentSerializer(serializers.Serializer):
    """The answer to a counter payment (documentation only: the view builds the dict itself)."""

    payment = PaymentStatusSerializer()
    order = OrderSerializer(help_text="The order, as GET /orders/{id}/ shows it: now `received`.")


class RefundRequestSerializer(StrictMixin, serializers.Serializer):
    """POST /api/v1/payments/{id}/refunds/: without an amount, everything still refundable."""

    amount = MoneyField(required=False)  # left out: everything still refundable (null is refused, not "all")
    reason = StrictCharField(max_length=500)


class RefundSerializer(serializers.ModelSerializer):
    class Meta:
        model = Refund
        fields = [
            "id",
            "payment",
            "amount",
            "status",
            "reason",
            "requested_by",
            "provider_refund_id",
            "provider_status",
            "error",
            "attempts",
            "created_at",
            "confirmed_at",
        ]


class RefundResultSerializer(serializers.Serializer):
    """The answer to a refund request (documentation only: the view builds the dict itself)."""

    refund = RefundSerializer()
    payment = PaymentStatusSerializer(help_text="The payment as it stands after this refund.")
