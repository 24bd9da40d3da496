from django.contrib import admin

from portal.changes.models import ApprovedConfiguration, ChangeRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    # Governance changes are proposed and decided in the portal (or by operators on
    # the server), where the four-eyes rule holds; the Django admin only shows them.
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "kind",
        "summary",
        "state",
        "proposed_by_actor",
        "decided_by_actor",
        "expires_at",
    )
    list_filter = ("state", "kind", "break_glass")


@admin.register(ApprovedConfiguration)
class ApprovedConfigurationAdmin(ReadOnlyAdmin):
    list_display = ("name", "approved_at")
