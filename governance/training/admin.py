"""Django admin views of training runs: read-only (runs change through their services)."""

from django.contrib import admin

from governance.admin import ReadOnlyAdmin
from governance.training.models import PipelineRun, PipelineStepRun


class StepInline(admin.TabularInline):
    model = PipelineStepRun
    fields = ("position", "name", "state", "started_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyAdmin):
    list_display = ("pk", "model", "trigger", "backend", "state", "version", "created_at")
    list_filter = ("model", "state", "trigger", "backend")
    list_select_related = ("model", "version")
    inlines = [StepInline]
