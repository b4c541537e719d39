"""LGPD retention (orders/privacy.py, `manage.py anonymise_customers`): customers with no order for
CUSTOMER_RETENTION_DAYS lose their CPF, name and e-mail, and every stored copy of them; their orders, payments,
refunds and amounts stay, and a returning person is a new customer."""

import json
import threading
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from validate_docbr import CPF

from kiosk.events.models import Event
from kiosk.models import AuditRecord
from kiosk.worker import SCHEDULE
from orders.models import Customer, Order, OrderItem
from orders.privacy import ANONYMISED, SYSTEM_USERNAME, customers_anonymise
from orders.services import ItemRequest, customer_identify, order_cancel, order_place
from payments.models import Payment, PaymentEvent, Refund, WebhookDelivery
from payments.services.refunds import refund_request
from tests.conftest import make_user, new_key, place, requires_mysql

pytestmark = pytest.mark.django_db
YEAR = timedelta(days=365)


def six_years_ago():
    return timezone.now() - 6 * YEAR


def backdate(customer: Customer, when) -> None:
    """The customer and all their orders as if made at `when`."""
    Customer.objects.filter(pk=customer.pk).update(created_at=when)
    Order.objects.filter(customer=customer).update(created_at=when)


def anonymise(*args) -> str:
    out = StringIO()
    call_command("anonymise_customers", *args, stdout=out)
    return out.getvalue()


def personal(customer: Customer) -> tuple:
    customer.refresh_from_db()
    return customer.cpf, customer.name, customer.email, customer.anonymised_at


def everything_stored() -> str:
    """Every stored payload and audit text a person's data could have been copied into."""
    rows = [
        *Event.objects.values_list("data", flat=True),
        *PaymentEvent.objects.values_list("payload", "message"),
        *WebhookDelivery.objects.values_list("body", "query", "headers"),
        *LogEntry.objects.values_list("object_repr", "change_message"),
        *AuditRecord.objects.values_list("object_repr", "reason", "before", "after"),
    ]
    return json.dumps(rows, default=str)


@pytest.fixture
def people(kiosk, menu, mercadopago):
    """Five customers, and what the retention rule should make of each:
    - `gone`: identified and last ordered six years ago, paid with CPF na nota, partly refunded: anonymised;
    - `silent`: identified six years ago, never ordered: anonymised;
    - `regular`: identified six years ago, ordered a year ago: kept (the clock restarts with each order);
    - `new`: identified today: kept;
    - `paying`: identified and ordered six years ago, that order still waiting for its payment: kept.
    """
    cpfs = CPF().generate_list(5, mask=False, repeat=False)
    gone = customer_identify(cpf=cpfs[0], name="Maria Antônia Souza", email="maria.souza@example.com")[0]
    burger = {"product_id": menu["burger"].pk, "quantity": 2}
    order = place(kiosk, [burger], customer_cpf=gone.cpf, cpf_on_receipt=True).json()
    payment = kiosk.post(f"/api/v1/orders/{order['id']}/checkout/", HTTP_IDEMPOTENCY_KEY=new_key()).json()["payment"]
    mercadopago.pay(payment["provider_order_id"])
    mercadopago.deliver()
    paid = Payment.objects.get(pk=payment["id"])
    refund_request(payment_id=paid.pk, amount=Decimal("10.00"), reason="cold fries", actor="boss")
    mercadopago.settle()
    # Mercado Pago's payer data, as its order and notification bodies may carry it.
    payer = {"email": gone.email, "first_name": "Maria", "identification": {"type": "CPF", "number": gone.cpf}}
    ledger = PaymentEvent.objects.create(
        payment=paid, type="status_changed", payload={"id": "ORD1", "payer": payer, "total_amount": "51.80"}
    )
    notification = WebhookDelivery.objects.create(
        payment=paid, topic="order", body=json.dumps({"data": {"id": "ORD1", "payer": payer}}), signature_valid=True
    )
    backdate(gone, six_years_ago())

    silent = customer_identify(cpf=cpfs[1], name="Silent Person", email="silent@example.com")[0]
    backdate(silent, six_years_ago())

    regular = customer_identify(cpf=cpfs[2], name="Regular Person")[0]
    order_cancel(order_id=place(kiosk, [burger], customer_cpf=regular.cpf).json()["id"])
    Customer.objects.filter(pk=regular.pk).update(created_at=six_years_ago())
    Order.objects.filter(customer=regular).update(created_at=timezone.now() - YEAR)

    new = customer_identify(cpf=cpfs[3], name="New Person")[0]

    paying = customer_identify(cpf=cpfs[4], name="Paying Person")[0]
    place(kiosk, [burger], customer_cpf=paying.cpf)
    backdate(paying, six_years_ago())
    return {
        **{"gone": gone, "silent": silent, "regular": regular, "new": new, "paying": paying},
        **{"payment": paid, "ledger": ledger, "notification": notification},
    }


def test_the_customers_past_retention_and_only_they_are_anonymised(people):
    kept = {name: personal(people[name]) for name in ("regular", "new", "paying")}
    gone_cpf = people["gone"].cpf

    output = anonymise()

    assert output.startswith("Anonymised 2 customer(s)"), output
    for name in ("gone", "silent"):
        cpf, name_, email, anonymised_at = personal(people[name])
        assert (cpf, name_, email) == (None, "", "") and anonymised_at is not None
        assert str(people[name]) == f"Anonymised customer #{people[name].pk}"
    assert {name: personal(people[name]) for name in kept} == kept
    assert gone_cpf not in everything_stored()


def test_older_than_overrides_the_setting_and_counts_from_the_last_order(people, settings):
    settings.CUSTOMER_RETENTION_DAYS = 7 * 365  # seven years: nobody yet
    assert anonymise().startswith("Anonymised 0 customer(s)")
    assert anonymise("--older-than", "400").startswith("Anonymised 2 customer(s)")  # the regular ordered 365 days ago
    assert anonymise("--older-than", "300").startswith("Anonymised 1 customer(s)")  # ...and now that is too long
    assert Customer.objects.filter(anonymised_at__isnull=True).count() == 2  # today's, and the one paying
    with pytest.raises(CommandError):
        anonymise("--older-than", "0")


def test_orders_payments_refunds_and_amounts_stay(people):
    payment = people["payment"]
    order = Order.objects.get(pk=payment.order_id)

    def fiscal():
        return (
            list(Order.objects.order_by("pk").values("pk", "customer_id", "total", "status", "cpf_on_receipt")),
            list(OrderItem.objects.order_by("pk").values("order_id", "product_name", "quantity", "line_total")),
            list(Payment.objects.order_by("pk").values("amount", "paid_amount", "status", "provider_order_id")),
            list(Refund.objects.order_by("pk").values("amount", "status", "provider_refund_id")),
            list(PaymentEvent.objects.order_by("pk").values_list("type", "amount", "provider_reference")),
            payment.refunded_amount(),
        )

    before = fiscal()
    paid_event = Event.objects.get(order=order, type="order.paid").data
    assert paid_event["customer"] == {"cpf": people["gone"].cpf}

    anonymise()

    assert fiscal() == before
    assert before[-1] == Decimal("10.00") and order.total == Decimal("51.80")
    assert Order.objects.get(pk=order.pk).customer_id == people["gone"].pk  # still the same (now nameless) customer
    scrubbed = Event.objects.get(order=order, type="order.paid").data
    assert scrubbed["customer"] == {"cpf": ANONYMISED}  # the receipt had a CPF; which one is gone
    assert {k: v for k, v in scrubbed.items() if k != "customer"} == {
        k: v for k, v in paid_event.items() if k != "customer"
    }
    ledger = PaymentEvent.objects.get(pk=people["ledger"].pk).payload
    assert ledger == {"id": "ORD1", "payer": ANONYMISED, "total_amount": "51.80"}
    notification = json.loads(WebhookDelivery.objects.get(pk=people["notification"].pk).body)
    assert notification == {"data": {"id": "ORD1", "payer": ANONYMISED}}


def test_a_second_run_changes_nothing(people):
    first = anonymise()
    state = (
        list(Customer.objects.order_by("pk").values()),
        everything_stored(),
        AuditRecord.objects.count(),
        LogEntry.objects.count(),
    )
    second = anonymise()
    assert first.startswith("Anonymised 2 customer(s)") and second.startswith("Anonymised 0 customer(s)")
    assert (
        list(Customer.objects.order_by("pk").values()),
        everything_stored(),
        AuditRecord.objects.count(),
        LogEntry.objects.count(),
    ) == state


def test_a_dry_run_counts_and_changes_nothing(people):
    def state():
        return list(Customer.objects.order_by("pk").values()), everything_stored(), list(User.objects.values("pk"))

    before = state()
    output = anonymise("--dry-run")
    assert output.startswith("Would anonymise 2 customer(s)") and "(1 order(s) kept)" in output
    assert "Dry run: nothing changed." in output
    assert state() == before
    assert not User.objects.filter(username=SYSTEM_USERNAME).exists()


def test_an_anonymised_cpf_is_a_stranger_to_the_kiosk(people, kiosk, menu):
    gone = people["gone"]
    cpf = gone.cpf
    anonymise()

    assert kiosk.get("/api/v1/customers/", {"cpf": cpf}).status_code == 404
    again = kiosk.post("/api/v1/customers/", {"cpf": cpf}, format="json")
    assert again.status_code == 201 and again.json()["id"] != gone.pk and again.json()["name"] == ""
    order = place(kiosk, [{"product_id": menu["burger"].pk, "quantity": 1}], customer_cpf=cpf).json()
    assert Order.objects.get(pk=order["id"]).customer_id == again.json()["id"]
    assert Order.objects.filter(customer=gone).count() == 1  # the old order stays with the anonymised customer


def test_the_audit_trail_names_who_ran_it_and_nothing_personal(people, manager_user):
    anonymise()
    records = AuditRecord.objects.filter(object_type="customer").order_by("object_id")
    assert [r.object_id for r in records] == sorted([str(people["gone"].pk), str(people["silent"].pk)], key=str)
    system = User.objects.get(username=SYSTEM_USERNAME)
    assert not system.is_active and not system.has_usable_password()
    assert {r.actor for r in records} == {system}
    gone = records.get(object_id=str(people["gone"].pk))
    assert (gone.before, gone.after["orders_kept"]) == ({"orders": 1}, 1)
    assert LogEntry.objects.filter(object_id=str(people["gone"].pk), user=system).exists()  # the customer's history

    # A person may run it in their own name; someone who may not change customers may not.
    Customer.objects.filter(pk=people["regular"].pk).update(created_at=six_years_ago())
    Order.objects.filter(customer=people["regular"]).update(created_at=six_years_ago())
    anonymise("--user", manager_user.username)
    assert AuditRecord.objects.get(object_id=str(people["regular"].pk)).actor == manager_user
    make_user("cook2", "kitchen")
    for user in ("cook2", "nobody"):
        with pytest.raises(CommandError, match="may not change customers"):
            anonymise("--user", user)


def test_nothing_personal_reaches_the_output_or_the_logs(people, caplog):
    caplog.set_level("DEBUG")
    secrets = [people["gone"].cpf, people["gone"].email, "Maria", "Souza", people["silent"].cpf, "Silent"]
    output = anonymise()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "LGPD retention: Anonymised 2 customer(s)" in logged
    for secret in secrets:
        assert secret not in output and secret not in logged


def test_the_back_office_shows_them_anonymised_and_read_only(people, admin_client):
    anonymise()
    gone = people["gone"]
    listing = admin_client.get("/admin/orders/customer/", {"anonymised": "yes"}).content.decode()
    assert "Anonymised" in listing and people["regular"].name not in listing
    assert listing.count("/admin/orders/customer/") >= 2  # the two anonymised customers' rows
    kept = admin_client.get("/admin/orders/customer/", {"anonymised": "no"}).content.decode()
    assert people["regular"].name in kept and f"/admin/orders/customer/{gone.pk}/change/" not in kept
    page = admin_client.get(f"/admin/orders/customer/{gone.pk}/change/").content.decode()
    assert f"Anonymised customer #{gone.pk}" in page and 'name="_save"' not in page
    refused = admin_client.post(f"/admin/orders/customer/{gone.pk}/change/", {"cpf": "52998224725", "name": "X"})
    assert refused.status_code == 403
    assert personal(gone)[:3] == (None, "", "")
    orders = admin_client.get("/admin/orders/order/").content.decode()
    assert "Anonymised" in orders


def test_the_worker_runs_it_daily_with_the_setting(people, settings):
    from orders.tasks import anonymise_customers

    assert ("orders.tasks.anonymise_customers", "SCHEDULE_ANONYMISE_SECONDS") in SCHEDULE
    assert settings.SCHEDULE_ANONYMISE_SECONDS == 86400 and settings.CUSTOMER_RETENTION_DAYS == 1825
    assert anonymise_customers.call().startswith("Anonymised 2 customer(s)")


def test_a_database_constraint_keeps_a_cpf_on_everyone_not_anonymised(db):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(cpf=None, name="")
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(cpf=None, name="Someone", anonymised_at=timezone.now())


@requires_mysql
@pytest.mark.django_db(transaction=True)
def test_an_order_placed_while_it_runs_spares_its_customer(terminal, menu):
    """The kiosk identifies a six-year-old customer and is placing their order (the customer row locked) when
    the retention run starts: the run waits, then sees the new order and leaves the customer alone."""
    cpf = CPF().generate(mask=False)
    customer = customer_identify(cpf=cpf, name="Back After Years")[0]
    Customer.objects.filter(pk=customer.pk).update(created_at=six_years_ago())
    locked, finished = threading.Event(), {}

    def retention_run():
        locked.wait(5)
        try:
            finished["result"] = customers_anonymise(older_than_days=1825)
        finally:
            close_old_connections()

    runner = threading.Thread(target=retention_run)
    runner.start()
    with transaction.atomic():
        order = order_place(terminal=terminal, items=[ItemRequest(menu["burger"].pk, 1)], customer_cpf=cpf)
        locked.set()
        runner.join(0.5)
        assert runner.is_alive()  # waiting for the customer's lock
    runner.join(10)
    assert finished["result"].customers == 0
    assert personal(customer)[:2] == (cpf, "Back After Years") and order.customer_id == customer.pk
    assert connection.vendor == "mysql"
