"""Admin view of requests: read-only (the project makes every admin so); requests change
only through the services, where every change is audited."""

from django.contrib import admin

from datasubjects.models import DataSubjectRequest


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(admin.ModelAdmin):
    list_display = ("public_id", "kind", "state", "due_on", "assigned_to")
    list_filter = ("kind", "state")
    exclude = ("code_hash",)
