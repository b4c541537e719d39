"""The back office's audit trail: Django's LogEntry plus our own append-only AuditRecord."""

import json

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.forms.models import model_to_dict

from kiosk.models import AuditRecord


def snapshot(obj, fields: list[str]) -> dict:
    """The audited fields of an object, as JSON-safe values."""
    return json.loads(json.dumps(model_to_dict(obj, fields=fields), cls=DjangoJSONEncoder))


def audit(
    *, user, obj, action: str, reason: str = "", before: dict | None = None, after: dict | None = None
) -> AuditRecord:
    LogEntry.objects.log_actions(
        user_id=user.pk,
        queryset=[obj],
        action_flag=CHANGE,
        change_message=f"{action}: {reason}" if reason else action,
        single_object=True,
    )
    return AuditRecord.objects.create(
        actor=user,
        action=action,
        object_type=ContentType.objects.get_for_model(obj).model,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        reason=reason,
        before=before,
        after=after,
    )
