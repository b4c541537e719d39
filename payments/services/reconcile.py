"""Reconciliation: asking Mercado Pago about what a notification may never have told us
(`manage.py reconcile_payments`, every minute; safe to run on several machines at once)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from orders.models import Order
from payments.gateway import GatewayError, gateway
from payments.models import Payment, Refund
from payments.services.apply import cancel_at_provider, payment_apply_provider_order
from payments.services.ledger import move_status, note
from payments.services.refunds import refunds_retry_due
from payments.transitions import MONEY_HELD, ORDER_STATUS, interpret_order

logger = logging.getLogger("payments")
Status = Payment.Status


def payments_to_check(*, now) -> Q:
    """Payments whose truth at Mercado Pago may differ from ours."""
    min_age = now - timedelta(seconds=30)
    # Our side gave the QR up (or saw it declined) while Mercado Pago last called it payable: it may still be paid.
    payable_words = ["", *(word for word, status in ORDER_STATUS.items() if status == Status.PENDING)]
    still_open = (
        Q(status=Status.PENDING, updated_at__lt=min_age)
        | Q(status__in=[Status.CANCELLED, Status.EXPIRED], provider_status__in=payable_words, updated_at__lt=min_age)
        | Q(status=Status.REJECTED, expires_at__gt=now - settings.MERCADOPAGO_QR_GRACE, updated_at__lt=min_age)
    )
    # Settled payments still change at Mercado Pago (a refund made in its panel, a chargeback): look at
    # recent ones now and then, in case their notification never came or never verified.
    recently_settled = Q(
        status__in=MONEY_HELD,
        paid_at__gte=now - settings.MERCADOPAGO_RECONCILE_SETTLED_FOR,
        updated_at__lt=now - settings.MERCADOPAGO_RECONCILE_SETTLED_EVERY,
    )
    refund_in_progress = Q(pk__in=Refund.objects.filter(status=Refund.Status.PENDING).values("payment_id"))
    asked_for = Q(check_requested_at__isnull=False)  # a legacy IPN named it
    return still_open | recently_settled | refund_in_progress | asked_for


def payments_reconcile(*, limit: int = 200) -> tuple[int, int]:
    """Asks Mercado Pago about every payment that may have moved there, applies the answers, and retries
    refunds Mercado Pago has not taken yet. Returns (payments checked, refunds retried)."""
    now = timezone.now()
    candidates = Payment.objects.filter(payments_to_check(now=now), provider_order_id__isnull=False).order_by(
        "updated_at"
    )[:limit]
    checked = 0
    for payment in list(candidates):
        try:
            mp_order = gateway().get_order(payment.provider_order_id)
            applied = payment_apply_provider_order(mp_order=mp_order, source=note(gettext_noop("reconcile")))
        except GatewayError as exc:
            logger.warning("reconcile: payment %s: %s", payment.pk, exc.message)
            continue
        except Exception:  # one payment Mercado Pago describes oddly must not stop the others
            logger.exception("reconcile: payment %s could not be applied", payment.pk)
            continue
        Payment.objects.filter(pk=payment.pk, check_requested_at__lte=now).update(check_requested_at=None)
        checked += 1
        if (
            applied
            and applied.status in (Status.CANCELLED, Status.EXPIRED)
            and interpret_order(mp_order).status == (Status.PENDING)
        ):
            cancel_at_provider([applied.pk])  # we gave it up, Mercado Pago still offers it: close it there too

    never_confirmed = Payment.objects.filter(
        status=Status.PENDING, provider_order_id__isnull=True, created_at__lt=now - settings.MERCADOPAGO_QR_EXPIRATION
    )
    for payment_id in list(never_confirmed.values_list("pk", flat=True)):
        with transaction.atomic():
            # Order first, then payment: the order every service locks in (its events take the order's row).
            Order.objects.select_for_update().filter(payments=payment_id).first()
            payment = Payment.objects.select_for_update().get(pk=payment_id)
            if payment.status == Status.PENDING and not payment.provider_order_id:
                move_status(
                    payment, Status.EXPIRED, message=note(gettext_noop("QR creation never confirmed by Mercado Pago"))
                )
                payment.save()

    return checked, refunds_retry_due(now=now)
