"""Admin view of requests: read-only (the project makes every admin so); requests change
only through the services, where every change is audited."""

from django.contrib import admin

from datasubjects.models import (
    ConsentRecord,
    DataSource,
    DataSubjectRequest,
    SourceTask,
    Suppression,
)


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(admin.ModelAdmin):
    list_display = ("public_id", "kind", "state", "due_on", "assigned_to")
    list_filter = ("kind", "state")
    exclude = ("code_hash", "customer_ids_sealed")


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "kind", "lookup_key", "active")


@admin.register(SourceTask)
class SourceTaskAdmin(admin.ModelAdmin):
    list_display = ("request", "source", "action", "state", "rows_found", "rows_changed")
    list_filter = ("state", "action")


@admin.register(ConsentRecord)
class ConsentRecordAdmin(admin.ModelAdmin):
    list_display = ("recorded_at", "purpose", "given", "source", "notice_version")
    list_filter = ("purpose", "given", "source")


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "reason", "request_ref", "lifted_at")
    list_filter = ("reason",)
