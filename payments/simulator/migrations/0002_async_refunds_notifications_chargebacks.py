# Refunds settle later (confirm_at, outcome), notifications leave from a queue, chargebacks.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('mp_simulator', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='simrefund',
            name='confirm_at',
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='simrefund',
            name='outcome',
            field=models.CharField(default='processed', max_length=12),
        ),
        migrations.AlterField(
            model_name='simrefund',
            name='status',
            field=models.CharField(max_length=24),
        ),
        migrations.CreateModel(
            name='SimChargeback',
            fields=[
                ('id', models.CharField(max_length=32, primary_key=True, serialize=False)),
                ('case_id', models.CharField(max_length=32)),
                ('status', models.CharField(default='opened', max_length=12)),
                ('references', models.JSONField(blank=True, default=list)),
                ('created_date', models.DateTimeField()),
                ('payment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='chargebacks', to='mp_simulator.simpayment')),
            ],
            options={
                'verbose_name': 'simulated chargeback',
                'ordering': ['created_date', 'id'],
            },
        ),
        migrations.CreateModel(
            name='SimNotification',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.CharField(max_length=1000)),
                ('topic', models.CharField(max_length=16)),
                ('action', models.CharField(max_length=32)),
                ('data_id', models.CharField(max_length=64)),
                ('body', models.TextField()),
                ('signature_ts', models.CharField(default='ms', max_length=2)),
                ('request_id', models.CharField(max_length=36)),
                ('due_at', models.DateTimeField()),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('sending', 'Sending'), ('sent', 'Sent'), ('failed', 'Failed')], default='queued', max_length=8)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('last_error', models.CharField(blank=True, max_length=500)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField()),
            ],
            options={
                'verbose_name': 'simulated notification',
                'ordering': ['created_at', 'id'],
                'indexes': [models.Index(fields=['status', 'due_at'], name='mp_sim_notification_due')],
            },
        ),
    ]
