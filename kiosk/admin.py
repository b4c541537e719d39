from django.contrib import admin

from kiosk.models import AuditRecord


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    """Who did what in the back office. Append-only: nobody edits or deletes it here."""

    list_display = ["created_at", "actor", "action", "object_type", "object_repr", "reason"]
    list_filter = ["action", "object_type"]
    list_select_related = ["actor"]
    date_hierarchy = "created_at"
    search_fields = ["=object_id", "actor__username", "reason"]
    fields = ["created_at", "actor", "action", "object_type", "object_id", "object_repr", "reason", "before", "after"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
