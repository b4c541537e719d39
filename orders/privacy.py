"""LGPD: customers past the retention period are anonymised; their orders, payments, refunds and amounts stay.

A customer is due when nothing has happened to them for CUSTOMER_RETENTION_DAYS: identified before the cutoff
and no order placed since (the clock restarts with each order, whose receipt may carry the CPF). Anonymising
replaces the CPF, name and e-mail, and whatever copies of them we stored: the CPF in `order.paid` events
("CPF na nota"), Mercado Pago's payer data in the payment ledger and the notifications, and the customer's name
in the back office's audit trail. `manage.py anonymise_customers` and the worker's daily job call
`customers_anonymise`. See docs/security.md.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, gettext_noop

from kiosk.events.models import Event
from kiosk.models import AuditRecord
from orders.models import Customer, Order
from payments.models import Payment, PaymentEvent, WebhookDelivery

logger = logging.getLogger(__name__)

ACTION = gettext_noop("Anonymise customer (retention period over)")
# The back office's audit trail names a person as the actor; a scheduled run has none, so it is this account,
# made on first use: inactive, with no usable password, nobody can log in as it.
SYSTEM_USERNAME = "lgpd-retention"
ANONYMISED = "[anonymised]"
# Keys whose values identify a person wherever they sit in a stored payload: ours (`customer.cpf` of
# order.paid) and Mercado Pago's (`payer`, with its e-mail, names, identification document and phone).
PERSONAL_KEYS = frozenset({"cpf", "email", "payer", "first_name", "last_name", "identification", "phone"})
# In an audit record's before/after of a customer, its `name` is the person's too.
CUSTOMER_KEYS = PERSONAL_KEYS | {"name"}


@dataclass
class Anonymisation:
    """What a run did (or, with dry_run, would do): counts only, nothing that names anybody."""

    cutoff: datetime
    dry_run: bool = False
    customers: int = 0
    orders_kept: int = 0
    events: int = 0
    payment_events: int = 0
    notifications: int = 0
    audit_entries: int = 0
    batches: int = 0

    def add(self, other: "Anonymisation") -> None:
        for name in ("customers", "orders_kept", "events", "payment_events", "notifications", "audit_entries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.batches += 1

    def summary(self) -> str:
        if self.dry_run:
            return (
                f"Would anonymise {self.customers} customer(s) with no order since {self.cutoff:%Y-%m-%d %H:%M} UTC "
                f"({self.orders_kept} order(s) kept). Dry run: nothing changed."
            )
        return (
            f"Anonymised {self.customers} customer(s) with no order since {self.cutoff:%Y-%m-%d %H:%M} UTC "
            f"in {self.batches} batch(es); kept {self.orders_kept} order(s) with their payments and amounts; "
            f"scrubbed {self.events} event(s), {self.payment_events} payment ledger row(s), "
            f"{self.notifications} notification(s), {self.audit_entries} audit entry(ies)."
        )


def scrub(value, keys: frozenset[str] = PERSONAL_KEYS):
    """`value` (JSON: dicts, lists, scalars) with what sits under any of `keys` replaced by ANONYMISED, at any
    depth. An empty value stays as it was: it said nothing about anybody."""
    if isinstance(value, dict):
        return {
            key: ANONYMISED if key in keys and item not in (None, "", [], {}) else scrub(item, keys)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [scrub(item, keys) for item in value]
    return value


def customers_due(*, cutoff: datetime) -> QuerySet[Customer]:
    """Customers not anonymised yet whose last sign of life is older than `cutoff`: identified before it, no
    order placed since, and no order still waiting for its payment (paying it puts the CPF on the receipt)."""
    recent = Order.objects.filter(customer=OuterRef("pk")).filter(
        Q(created_at__gte=cutoff) | Q(status=Order.Status.AWAITING_PAYMENT)
    )
    return Customer.objects.filter(anonymised_at__isnull=True, created_at__lt=cutoff).exclude(Exists(recent))


def system_actor():
    user, _ = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False, "password": make_password(None)}
    )
    return user


def customers_anonymise(
    *, older_than_days: int, dry_run: bool = False, batch_size: int = 200, actor=None, now: datetime | None = None
) -> Anonymisation:
    """Anonymises every customer due (`customers_due`) with no order in the last `older_than_days` days, in
    batches of `batch_size`, each its own transaction. Running it again changes nothing (idempotent); with
    `dry_run`, only counts. `actor` (a user) is who the audit trail names; by default the system account."""
    if older_than_days < 1 or batch_size < 1:
        raise ValueError("older_than_days and batch_size must be at least 1")
    now = now or timezone.now()
    result = Anonymisation(cutoff=now - timedelta(days=older_than_days), dry_run=dry_run)
    due = customers_due(cutoff=result.cutoff)
    if dry_run:
        result.customers = due.count()
        result.orders_kept = Order.objects.filter(customer__in=due).count()
        return result
    reason = gettext("No order since %(date)s: the retention period of %(days)d days is over.") % {
        "date": date_format(timezone.localtime(result.cutoff), "SHORT_DATE_FORMAT"),
        "days": older_than_days,
    }
    after = 0
    while ids := list(due.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size]):
        actor = actor or system_actor()  # made only when somebody is due
        result.add(_anonymise_batch(ids, cutoff=result.cutoff, now=now, actor=actor, reason=reason))
        after = ids[-1]
    logger.info("LGPD retention: %s", result.summary())
    return result


@transaction.atomic
def _anonymise_batch(ids: list[int], *, cutoff: datetime, now: datetime, actor, reason: str) -> Anonymisation:
    done = Anonymisation(cutoff=cutoff)
    # Lock first, then look again: an order placed meanwhile (order_place locks its customer) spares the
    # customer, and a run at the same moment finds them anonymised already.
    locked = list(Customer.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))
    customer_ids = list(customers_due(cutoff=cutoff).filter(pk__in=locked).values_list("pk", flat=True))
    if not customer_ids:
        return done
    Customer.objects.filter(pk__in=customer_ids).update(cpf=None, name="", email="", anonymised_at=now, updated_at=now)
    done.customers = len(customer_ids)

    order_ids = list(Order.objects.filter(customer_id__in=customer_ids).values_list("pk", flat=True))
    done.orders_kept = len(order_ids)
    done.events = _scrub_rows(
        Event.objects.filter(order_id__in=order_ids, data__has_key="customer"), "data", PERSONAL_KEYS
    )
    # By ids, not through a join: a locking read locks every table it joins (MariaDB has no FOR UPDATE OF).
    payment_ids = list(Payment.objects.filter(order_id__in=order_ids).values_list("pk", flat=True))
    done.payment_events = _scrub_rows(
        PaymentEvent.objects.filter(payment_id__in=payment_ids, payload__isnull=False), "payload", PERSONAL_KEYS
    )
    done.notifications = _scrub_bodies(WebhookDelivery.objects.filter(payment_id__in=payment_ids))

    keys = [str(pk) for pk in customer_ids]
    customer_type = ContentType.objects.get_for_model(Customer)
    customers = list(Customer.objects.filter(pk__in=customer_ids).order_by("pk"))
    names = {str(customer.pk): str(customer)[:200] for customer in customers}
    entries = list(LogEntry.objects.select_for_update().filter(content_type=customer_type, object_id__in=keys))
    for entry in entries:
        entry.object_repr = names[entry.object_id]
    LogEntry.objects.bulk_update(entries, ["object_repr"])
    records = list(AuditRecord.objects.select_for_update().filter(object_type="customer", object_id__in=keys))
    for record in records:
        record.object_repr = names[record.object_id]
        record.before, record.after = scrub(record.before, CUSTOMER_KEYS), scrub(record.after, CUSTOMER_KEYS)
    AuditRecord.objects.bulk_update(records, ["object_repr", "before", "after"])
    done.audit_entries = len(entries) + len(records)

    # The anonymisation's own trail: who (the system account or the person who ran it), when, why, per customer.
    LogEntry.objects.log_actions(
        user_id=actor.pk,
        queryset=customers,
        action_flag=CHANGE,
        change_message=f"{ACTION}: {reason}",
        single_object=False,
    )
    orders_of = dict.fromkeys(customer_ids, 0)
    for customer_id in Order.objects.filter(pk__in=order_ids).values_list("customer_id", flat=True):
        orders_of[customer_id] += 1
    AuditRecord.objects.bulk_create(
        AuditRecord(
            actor=actor,
            action=ACTION,
            object_type="customer",
            object_id=str(customer.pk),
            object_repr=names[str(customer.pk)],
            reason=reason,
            before={"orders": orders_of[customer.pk]},
            after={"anonymised_at": now.isoformat(), "orders_kept": orders_of[customer.pk]},
        )
        for customer in customers
    )
    return done


def _scrub_rows(queryset: QuerySet, field: str, keys: frozenset[str]) -> int:
    """Scrubs a JSON field of the rows (locked); returns how many changed."""
    changed = []
    for row in queryset.select_for_update().only("pk", field):
        value = getattr(row, field)
        cleaned = scrub(value, keys)
        if cleaned != value:
            setattr(row, field, cleaned)
            changed.append(row)
    queryset.model.objects.bulk_update(changed, [field], batch_size=500)
    return len(changed)


def _scrub_bodies(queryset: QuerySet[WebhookDelivery]) -> int:
    """Scrubs the stored bodies of Mercado Pago's notifications (text as received; JSON when readable)."""
    changed = []
    for delivery in queryset.select_for_update().only("pk", "body"):
        try:
            body = json.loads(delivery.body)
        except ValueError:
            continue  # not JSON: nothing of ours to find in it
        cleaned = scrub(body)
        if cleaned != body:
            delivery.body = json.dumps(cleaned, separators=(",", ":"))
            changed.append(delivery)
    WebhookDelivery.objects.bulk_update(changed, ["body"], batch_size=500)
    return len(changed)
