"""The back office for the platform: the audit trail, background tasks and the workers running them."""

import contextlib
from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django_tasks import TaskResultStatus
from django_tasks_db.admin import DBTaskResultAdmin  # importing it registers it, whatever the app order
from django_tasks_db.models import DBTaskResult, get_date_max

from kiosk import worker
from kiosk.audit import audit
from kiosk.jobs import policy_for
from kiosk.models import AuditRecord, WorkerHeartbeat


class ReadOnlyMixin:
    """For what the back office shows and never edits: ledgers, audit trails, deliveries, heartbeats."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Who did what in the back office. Append-only: nobody edits or deletes it here."""

    list_display = ["created_at", "actor", "action", "object_type", "object_repr", "reason"]
    list_filter = ["action", "object_type"]
    list_select_related = ["actor"]
    date_hierarchy = "created_at"
    search_fields = ["=object_id", "actor__username", "reason"]
    fields = ["created_at", "actor", "action", "object_type", "object_id", "object_repr", "reason", "before", "after"]
    readonly_fields = fields


# --- Background work (django-tasks-db) ------------------------------------------------------------

admin.site.unregister(DBTaskResult)


class TaskStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("ready", "ready"),
            ("scheduled", "scheduled (later, or a retry)"),
            ("running", "running"),
            ("succeeded", "succeeded"),
            ("dead", "dead"),
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
class TaskResultAdmin(DBTaskResultAdmin):
    """Tasks as the back office sees them: state, attempts, last error; dead ones can run again."""

    list_display = ["task_name", "state", "attempts", "last_error", "enqueued_at", "started_at", "finished_at"]
    list_filter = [TaskStateFilter, "queue_name", "priority"]
    list_per_page = 100
    date_hierarchy = "enqueued_at"
    search_fields = ["task_path", "exception_class_path"]
    actions = ["run_again"]

    def get_readonly_fields(self, request, obj=None):
        return ["state", "attempts", *super().get_readonly_fields(request, obj)]

    @admin.display(description="state", ordering="status")
    def state(self, row: DBTaskResult) -> str:
        state = task_state(row)
        return format_html("<strong>{}</strong>", state) if state == "dead" else state

    @admin.display(description="attempts")
    def attempts(self, row: DBTaskResult) -> str:
        return f"{len(row.worker_ids)} of {_max_attempts(row)}"

    @admin.display(description="last error")
    def last_error(self, row: DBTaskResult) -> str:
        if not row.exception_class_path:
            return "-"
        lines = [line for line in row.traceback.splitlines() if line.strip()]
        return format_html("{}<br><small>{}</small>", row.exception_class_path, lines[-1][:300] if lines else "")

    def has_run_again_permission(self, request) -> bool:
        # The tasks' "change": the only change the back office makes to one is running it again.
        return request.user.has_perm("django_tasks_database.change_dbtaskresult")

    @admin.action(description="Run again (dead tasks only)", permissions=["run_again"])
    def run_again(self, request, queryset):
        dead = list(queryset.filter(status=TaskResultStatus.FAILED))
        skipped = queryset.exclude(status=TaskResultStatus.FAILED).count()
        count = worker.run_again([row.pk for row in dead])
        for row in dead:
            audit(user=request.user, obj=row, action="Run task again", before={"attempts": len(row.worker_ids)})
        self.message_user(request, f"{count} dead task(s) back in the queue.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} not dead.", messages.WARNING)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The running workers (`manage.py run_worker`), as their heartbeats show them."""

    list_display = ["worker_id", "hostname", "pid", "alive", "seen_at", "started_at", "tasks_run", "current_task"]
    fields = list_display
    readonly_fields = fields
    ordering = ["-seen_at"]

    @admin.display(description="alive", boolean=True)
    def alive(self, beat: WorkerHeartbeat) -> bool:
        return beat.seen_at >= timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS)
