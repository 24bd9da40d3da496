"""Django admin views of rollouts: read-only (rollouts change through their services)."""

from django.contrib import admin

from governance.admin import ReadOnlyAdmin
from governance.rollouts.models import Rollout, RolloutStep


class StepInline(admin.TabularInline):
    model = RolloutStep
    fields = ("index", "weight", "started_at", "analysed_at", "result")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    list_display = ("pk", "model", "version", "target", "state", "weight", "created_at")
    list_filter = ("model", "target", "state")
    list_select_related = ("model", "version")
    inlines = [StepInline]
