from django.contrib import admin

from portal.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "sequence",
        "occurred_at",
        "action",
        "actor_type",
        "actor_id",
        "object_type",
        "object_id",
    )
    list_filter = ("actor_type",)
    search_fields = ("action", "object_id", "actor_id")
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    # The ledger is append-only: nobody edits it, here or anywhere.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
