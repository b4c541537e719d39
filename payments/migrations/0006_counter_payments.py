"""Payments taken at the counter: cash, or a card machine outside Mercado Pago.

A payment now has a provider (`mercadopago`, `counter`) and a method (`mercadopago_qr`, `cash`,
`card_outside`); every existing payment is a Mercado Pago QR, which the defaults say. The ledger gets the
line `counter_payment`. Cashiers see payments in the admin and may record a counter payment; so may managers.
Orders marked paid by hand before this (no payment row) stay as they were: the sales report counts them as cash.
"""

from django.db import migrations, models

from kiosk.migration_helpers import grant as grant_permissions

CASHIER_CODENAMES = ["view_payment", "view_paymentevent", "view_refund", "record_counter_payment"]
MANAGER_CODENAMES = ["record_counter_payment"]


def grant(apps, schema_editor):
    grant_permissions(apps, "cashier", "payments", CASHIER_CODENAMES)
    grant_permissions(apps, "manager", "payments", MANAGER_CODENAMES)


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0007_cashier_role_and_store_staff'),
        ('payments', '0005_manager_change_permissions'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='payment',
            options={'ordering': ['-created_at'], 'permissions': [('refund_payment', 'Can refund payments through Mercado Pago'), ('view_sales_report', 'Can see the sales report and export it'), ('record_counter_payment', 'Can record a payment taken at the counter (cash, card outside Mercado Pago)')]},
        ),
        migrations.AddField(
            model_name='payment',
            name='method',
            field=models.CharField(choices=[('mercadopago_qr', 'Mercado Pago QR'), ('cash', 'Cash'), ('card_outside', 'Card (machine outside Mercado Pago)')], default='mercadopago_qr', max_length=20),
        ),
        migrations.AlterField(
            model_name='payment',
            name='provider',
            field=models.CharField(choices=[('mercadopago', 'Mercado Pago'), ('counter', 'At the counter')], default='mercadopago', max_length=20),
        ),
        migrations.AlterField(
            model_name='paymentevent',
            name='type',
            field=models.CharField(choices=[('created', 'Created'), ('counter_payment', 'Paid at the counter'), ('qr_created', 'QR created'), ('qr_failed', 'QR creation failed'), ('notification_received', 'Notification received'), ('status_changed', 'Status changed'), ('cancel_requested', 'Cancel requested'), ('cancel_failed', 'Cancel failed'), ('refund_requested', 'Refund requested'), ('refund_retry', 'Refund to be retried'), ('refund_accepted', 'Refund accepted, in progress'), ('refund_succeeded', 'Refund succeeded'), ('refund_failed', 'Refund failed'), ('chargeback', 'Chargeback'), ('review_flagged', 'Flagged for review'), ('review_resolved', 'Review resolved')], max_length=30),
        ),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('method', 'mercadopago_qr'), ('provider', 'mercadopago')), models.Q(('method__in', ['cash', 'card_outside']), ('provider', 'counter')), _connector='OR'), name='payment_method_of_its_provider'),
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
