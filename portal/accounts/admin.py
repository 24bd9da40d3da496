from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from portal.accounts.choices import Role
from portal.accounts.models import RoleGrant, User


class RoleGrantInline(admin.TabularInline):
    model = RoleGrant
    fk_name = "user"
    extra = 0
    fields = ("role", "granted_by", "granted_at", "revoked_by", "revoked_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # roles are granted in the portal, where the grant is audited

    def has_view_permission(self, request, obj=None) -> bool:
        # The portal's role, not Django's permissions (is_superuser grants nothing).
        return request.user.is_active and request.user.has_role(Role.PORTAL_ADMIN)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "full_name", "is_active", "is_staff", "date_joined")
    search_fields = ("email", "full_name")
    # No "password" field: its form links to the admin's change-password page, and an
    # admin who could set someone's password could sign in as them.
    fieldsets = (
        (None, {"fields": ("email",)}),
        ("Profile", {"fields": ("full_name",)}),
        (
            "Status",
            {"fields": ("is_active", "is_staff", "is_superuser", "date_joined", "last_login")},
        ),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email",)}),)
    readonly_fields = ("date_joined", "last_login")
    inlines = [RoleGrantInline]

    # Users and roles change in the portal's own screens, where each change is audited;
    # the Django admin only shows them.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self) -> list:
        # Drop Django's "<id>/password/" page altogether, not only its permission.
        return [url for url in super().get_urls() if "password" not in str(url.pattern)]
