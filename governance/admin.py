"""Django admin views of the registry: read-only, since every change goes through the
portal's services, where it is audited."""

from django.contrib import admin

from governance.models import (
    CardRevision,
    CardSection,
    ModelCard,
    ModelVersion,
    RegisteredModel,
    TargetAssignment,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnlyAdmin):
    list_display = ("slug", "name", "kind", "risk_tier", "owner")
    search_fields = ("slug", "name")


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ("model", "version", "tag", "state", "registered_at", "registered_by")
    list_filter = ("model", "state")
    search_fields = ("version", "tag", "data_version", "code_version", "image_digest")
    list_select_related = ("model",)


@admin.register(TargetAssignment)
class TargetAssignmentAdmin(ReadOnlyAdmin):
    list_display = ("model", "target", "version", "since")
    list_select_related = ("model", "version")


class CardSectionInline(admin.TabularInline):
    model = CardSection
    fields = ("key", "inherited", "updated_by", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(ModelCard)
class ModelCardAdmin(ReadOnlyAdmin):
    list_display = ("version", "inherited_from", "updated_at")
    list_select_related = ("version__model",)
    inlines = [CardSectionInline]


@admin.register(CardRevision)
class CardRevisionAdmin(ReadOnlyAdmin):
    list_display = ("card", "number", "section_key", "author", "actor", "created_at")
    list_select_related = ("card__version__model", "author")
