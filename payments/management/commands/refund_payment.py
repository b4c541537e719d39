from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from kiosk.problems import DomainError
from payments.gateway import GatewayError, GatewayUnavailable
from payments.models import Payment, Refund
from payments.services.refunds import amount_in_cents, refund_request, request_key_for


class Command(BaseCommand):
    help = (
        "Refund a payment through Mercado Pago (all that is refundable, or --amount), as a manager would. "
        "Running the same command again (same payment, amount and reason, or the same --idempotency-key) "
        "continues the first refund, for instance after Mercado Pago timed out; it never refunds twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("payment_id", type=int)
        parser.add_argument("--amount", help='Decimal such as "10.00"; default: everything still refundable.')
        parser.add_argument("--reason", required=True)
        parser.add_argument("--user", required=True, help="Username of the manager giving the money back.")
        parser.add_argument(
            "--idempotency-key",
            help="Names this refund; default: the payment, amount and reason. A run with a key already used "
            "continues that refund; a second refund of the same amount for the same reason needs a new key.",
        )

    def handle(self, *args, payment_id, amount, reason, user, idempotency_key, **options):
        manager = get_user_model().objects.filter(username=user).first()
        if manager is None or not manager.has_perm("payments.refund_payment"):
            raise CommandError(f"User '{user}' does not exist or may not refund (payments.refund_payment).")
        try:
            value = None if amount is None else amount_in_cents(amount)  # 10, 10.0 and 10.00: the same refund
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        key = idempotency_key or f"{payment_id}\0{'all' if value is None else value}\0{reason.strip()}"
        # One caller for every command-line run: another manager running the same command continues it too.
        request_key = request_key_for(caller="cli", key=key)
        earlier = Refund.objects.filter(request_key=request_key).values_list("pk", flat=True).first()
        try:
            refund = refund_request(
                payment_id=payment_id,
                amount=value,
                reason=reason,
                actor=manager.get_username(),
                request_key=request_key,
            )
        except Payment.DoesNotExist:
            raise CommandError(f"No payment {payment_id}.") from None
        except GatewayUnavailable as exc:
            raise CommandError(
                f"Mercado Pago did not answer ({exc}). Refund {exc.refund_id} is held (its amount reserved) and retried "
                "automatically by reconcile_payments; running this same command again continues it, "
                "it does not refund twice."
            ) from None
        except (DomainError, GatewayError) as exc:
            raise CommandError(str(exc)) from None
        if earlier is not None:
            self.stdout.write(
                f"Refund {refund.pk} was asked for by an earlier run with the same payment, amount and reason "
                "(or key): this run continued it, no second refund was made. For another refund, give another "
                "--reason or --idempotency-key."
            )
        if refund.status == Refund.Status.FAILED:
            raise CommandError(
                f"Refund {refund.pk}: Mercado Pago refused it: {refund.error}. To ask again, give another "
                "--idempotency-key."
            )
        self.stdout.write(
            f"Refund {refund.pk}: {refund.amount} {refund.status} (Mercado Pago {refund.provider_refund_id})."
        )
