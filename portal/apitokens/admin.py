from django.contrib import admin

from portal.apitokens.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "owner",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    search_fields = ("name", "prefix", "owner__email")
    list_filter = ("revoked_at",)
    readonly_fields = [f.name for f in ApiToken._meta.fields]

    # Tokens are issued and revoked in the portal or with `manage.py apitoken`, audited.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
