from django.contrib import admin

from portal.notify.models import EmailNotification, WebhookDelivery, WebhookEndpoint


class _ReadOnly(admin.ModelAdmin):
    # Endpoints are managed in the portal (audited); deliveries and e-mails are records.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(_ReadOnly):
    list_display = ("name", "format", "active", "created_at")
    exclude = ("secret",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_ReadOnly):
    list_display = ("event_type", "event_id", "endpoint", "state", "attempts", "last_status_code")
    list_filter = ("state", "event_type")


@admin.register(EmailNotification)
class EmailNotificationAdmin(_ReadOnly):
    list_display = ("event_type", "event_id", "recipient", "state", "attempts", "sent_at")
    list_filter = ("state", "event_type")
