"""Response shapes of the payments API. Money is a decimal string."""

import io

import segno
from rest_framework import serializers

from kiosk.api import MoneyField, StrictCharField, StrictMixin
from payments.models import Payment, Refund


class PaymentSerializer(serializers.ModelSerializer):
    """What the kiosk polls and shows: the QR to scan and the state of the money."""

    qr_svg = serializers.SerializerMethodField(help_text="The QR as an SVG document, ready to show.")

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
            "created_at",
        ]

    def get_qr_svg(self, payment: Payment) -> str | None:
        if not payment.qr_data or payment.status != Payment.Status.PENDING:
            return None
        buffer = io.BytesIO()
        segno.make(payment.qr_data, error="m").save(buffer, kind="svg", scale=6, border=2, xmldecl=False)
        return buffer.getvalue().decode()


class PaymentStatusSerializer(serializers.ModelSerializer):
    """The cheap answer for polling: no QR rendering."""

    class Meta:
        model = Payment
        fields = ["id", "status", "amount", "paid_amount", "paid_at", "expires_at", "provider_order_id"]


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
            "error",
            "created_at",
        ]
