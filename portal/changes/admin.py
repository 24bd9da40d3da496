from django.contrib import admin

from portal.admin_readonly import ReadOnlyAdminMixin
from portal.changes.models import ApprovedConfiguration, ChangeRequest

# Governance changes are proposed and decided in the portal (or by operators on the
# server), where the four-eyes rule holds; the Django admin only shows them.


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
class ApprovedConfigurationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "approved_at")
