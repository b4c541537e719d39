"""The back office for the platform: the audit trail, background tasks and the workers running them."""

import contextlib
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.translation import gettext, gettext_noop, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from django_tasks import TaskResultStatus
from django_tasks_db.admin import DBTaskResultAdmin  # importing it registers it, whatever the app order
from django_tasks_db.models import DBTaskResult, get_date_max

from kiosk import worker
from kiosk.audit import audit
from kiosk.jobs import policy_for
from kiosk.models import AuditRecord, WorkerHeartbeat
from kiosk.store_time import StoreTimeZoneMixin


def code_column(name: str, description):
    """A column (or read-only field) showing a machine value as code: a topic such as "order" is Mercado Pago's
    word, not ours to translate."""

    @admin.display(description=description, ordering=name)
    def show(*args) -> str:  # (obj), or (model_admin, obj) as a ModelAdmin's attribute
        value = getattr(args[-1], name)
        return format_html("<code>{}</code>", value) if value not in (None, "") else "-"

    show.__name__ = f"{name}_code"
    return show


def code_filter(name: str, title):
    """A list filter by a field's stored values, shown as code (Mercado Pago's topics: "order", "payment")."""

    class CodeFilter(admin.SimpleListFilter):
        parameter_name = name

        def lookups(self, request, model_admin):
            values = model_admin.model._default_manager.order_by(name).values_list(name, flat=True).distinct()
            return [(value, format_html("<code>{}</code>", value)) for value in values if value]

        def queryset(self, request, queryset):
            return queryset.filter(**{name: self.value()}) if self.value() else queryset

    CodeFilter.title = title
    CodeFilter.__name__ = f"{name.title()}CodeFilter"
    return CodeFilter


def model_name(object_type: str) -> str:
    """An audited object's type ("order") as the reader calls it ("pedido")."""
    for model in apps.get_models():
        if model._meta.model_name == object_type:
            return str(model._meta.verbose_name)
    return object_type


class ReadOnlyMixin:
    """For what the back office shows and never edits: ledgers, audit trails, deliveries, heartbeats."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AuditActionFilter(admin.SimpleListFilter):
    """The actions recorded, named as the reader says them (the trail keeps them in English)."""

    title = _("action")
    parameter_name = "action"

    def lookups(self, request, model_admin):
        actions = AuditRecord.objects.order_by("action").values_list("action", flat=True).distinct()
        return [(action, gettext(action)) for action in actions]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


class AuditObjectTypeFilter(admin.SimpleListFilter):
    title = _("object type")
    parameter_name = "object_type"

    def lookups(self, request, model_admin):
        kinds = AuditRecord.objects.order_by("object_type").values_list("object_type", flat=True).distinct()
        return [(kind, model_name(kind)) for kind in kinds]

    def queryset(self, request, queryset):
        return queryset.filter(object_type=self.value()) if self.value() else queryset


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyMixin, StoreTimeZoneMixin, admin.ModelAdmin):
    """Who did what in the back office. Append-only: nobody edits or deletes it here.

    An action is kept in English (the source language: "Kitchen: start preparing") and shown translated."""

    list_display = ["created_at", "actor", "action_done", "object_kind", "object_repr", "reason"]
    list_filter = [AuditActionFilter, AuditObjectTypeFilter]
    list_select_related = ["actor"]
    date_hierarchy = "created_at"
    search_fields = ["=object_id", "actor__username", "reason"]
    fields = [
        "created_at", "actor", "action_done", "object_kind", "object_id", "object_repr", "reason", "before", "after",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description=_("action"), ordering="action")
    def action_done(self, record: AuditRecord) -> str:
        return gettext(record.action) if record.action else ""

    @admin.display(description=_("object type"), ordering="object_type")
    def object_kind(self, record: AuditRecord) -> str:
        return model_name(record.object_type)


# --- Background work (django-tasks-db) ------------------------------------------------------------

admin.site.unregister(DBTaskResult)


# A task's state as the back office names it (task_state).
TASK_STATES = {
    "ready": pgettext_lazy("task state", "ready"),
    "scheduled": pgettext_lazy("task state", "scheduled"),
    "running": pgettext_lazy("task state", "running"),
    "succeeded": pgettext_lazy("task state", "succeeded"),
    "dead": pgettext_lazy("task state", "dead"),
}


class TaskStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("ready", TASK_STATES["ready"]),
            ("scheduled", _("scheduled (later, or a retry)")),
            ("running", TASK_STATES["running"]),
            ("succeeded", TASK_STATES["succeeded"]),
            ("dead", TASK_STATES["dead"]),
        ]

    def queryset(self, request, queryset):
        now, never = timezone.now(), get_date_max()
        match self.value():
            case "ready":
                return queryset.filter(status=TaskResultStatus.READY).filter(Q(run_after=never) | Q(run_after__lte=now))
            case "scheduled":
                return queryset.filter(status=TaskResultStatus.READY, run_after__gt=now).exclude(run_after=never)
            case "running":
                return queryset.filter(status=TaskResultStatus.RUNNING)
            case "succeeded":
                return queryset.filter(status=TaskResultStatus.SUCCESSFUL)
            case "dead":
                return queryset.filter(status=TaskResultStatus.FAILED)
        return queryset


def task_state(row: DBTaskResult, *, now=None) -> str:
    """What the back office calls a task's state: FAILED rows are "dead" (retries are READY again)."""
    if row.status == TaskResultStatus.READY:
        later = row.run_after != get_date_max() and row.run_after > (now or timezone.now())
        return "scheduled" if later else "ready"
    return {
        TaskResultStatus.RUNNING: "running",
        TaskResultStatus.SUCCESSFUL: "succeeded",
        TaskResultStatus.FAILED: "dead",
    }.get(row.status, row.status.lower())


def _max_attempts(row: DBTaskResult) -> int:
    with contextlib.suppress(ImportError):  # a task's retry policy is known once its module is imported
        import_string(row.task_path)
    return policy_for(row.task_path).max_attempts


@admin.register(DBTaskResult)
class TaskResultAdmin(StoreTimeZoneMixin, DBTaskResultAdmin):
    """Tasks as the back office sees them: state, attempts, last error; dead ones can run again."""

    list_display = ["task", "state", "attempts", "last_error", "enqueued_at", "started_at", "finished_at"]
    list_filter = [TaskStateFilter, "queue_name", "priority"]
    list_per_page = 100
    date_hierarchy = "enqueued_at"
    search_fields = ["task_path", "exception_class_path"]
    actions = ["run_again"]

    def get_readonly_fields(self, request, obj=None):
        return ["state", "attempts", *super().get_readonly_fields(request, obj)]

    @admin.display(description=_("task"), ordering="task_path")
    def task(self, row: DBTaskResult) -> str:
        return row.task_name

    @admin.display(description=_("state"), ordering="status")
    def state(self, row: DBTaskResult) -> str:
        state = task_state(row)
        label = TASK_STATES.get(state, state)
        return format_html("<strong>{}</strong>", label) if state == "dead" else label

    @admin.display(description=_("attempts"))
    def attempts(self, row: DBTaskResult) -> str:
        return gettext("%(done)d of %(most)d") % {"done": len(row.worker_ids), "most": _max_attempts(row)}

    @admin.display(description=_("traceback"))
    def formatted_traceback(self, row: DBTaskResult) -> str:
        return super().formatted_traceback(row)

    @admin.display(description=_("run after"))
    def display_run_after(self, row: DBTaskResult):
        return super().display_run_after(row)

    @admin.display(description=_("last error"))
    def last_error(self, row: DBTaskResult) -> str:
        if not row.exception_class_path:
            return "-"
        lines = [line for line in row.traceback.splitlines() if line.strip()]
        return format_html("{}<br><small>{}</small>", row.exception_class_path, lines[-1][:300] if lines else "")

    def has_run_again_permission(self, request) -> bool:
        # The tasks' "change": the only change the back office makes to one is running it again.
        return request.user.has_perm("django_tasks_database.change_dbtaskresult")

    @admin.action(description=_("Run again (dead tasks only)"), permissions=["run_again"])
    def run_again(self, request, queryset):
        dead = list(queryset.filter(status=TaskResultStatus.FAILED))
        skipped = queryset.exclude(status=TaskResultStatus.FAILED).count()
        count = worker.run_again([row.pk for row in dead])
        for row in dead:
            audit(
                user=request.user,
                obj=row,
                action=gettext_noop("Run task again"),
                before={"attempts": len(row.worker_ids)},
            )
        message = ngettext(
            "%(count)d dead task back in the queue.", "%(count)d dead tasks back in the queue.", count
        ) % {"count": count}
        self.message_user(request, message, messages.SUCCESS)
        if skipped:
            message = ngettext("Skipped %(count)d not dead.", "Skipped %(count)d not dead.", skipped) % {
                "count": skipped
            }
            self.message_user(request, message, messages.WARNING)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyMixin, StoreTimeZoneMixin, admin.ModelAdmin):
    """The running workers (`manage.py run_worker`), as their heartbeats show them."""

    list_display = ["worker_id", "hostname", "pid", "alive", "seen_at", "started_at", "tasks_run", "current_task"]
    fields = list_display
    readonly_fields = fields
    ordering = ["-seen_at"]

    @admin.display(description=_("alive"), boolean=True)
    def alive(self, beat: WorkerHeartbeat) -> bool:
        return beat.seen_at >= timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS)
