from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from kiosk.problems import DomainError
from payments.gateway import GatewayError
from payments.models import Payment
from payments.services.refunds import refund_request


class Command(BaseCommand):
    help = "Refund a payment through Mercado Pago (all that is refundable, or --amount), as a manager would."

    def add_arguments(self, parser):
        parser.add_argument("payment_id", type=int)
        parser.add_argument("--amount", help='Decimal such as "10.00"; default: everything still refundable.')
        parser.add_argument("--reason", required=True)
        parser.add_argument("--user", required=True, help="Username of the manager giving the money back.")

    def handle(self, *args, payment_id, amount, reason, user, **options):
        manager = get_user_model().objects.filter(username=user).first()
        if manager is None or not manager.has_perm("payments.refund_payment"):
            raise CommandError(f"User '{user}' does not exist or may not refund (payments.refund_payment).")
        try:
            value = Decimal(amount) if amount is not None else None
        except InvalidOperation:
            raise CommandError(f"Amount '{amount}' is not a decimal such as 10.00.") from None
        try:
            refund = refund_request(payment_id=payment_id, amount=value, reason=reason, actor=manager.get_username())
        except Payment.DoesNotExist:
            raise CommandError(f"No payment {payment_id}.") from None
        except (DomainError, GatewayError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Refund {refund.pk}: {refund.amount} {refund.status} (Mercado Pago {refund.provider_refund_id})."
        )
