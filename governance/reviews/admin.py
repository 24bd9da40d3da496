"""Read-only admin views: policies are edited in the portal (audited), reviews and
decisions change only through the services."""

from django.contrib import admin

from governance.reviews.models import (
    PubSubMessage,
    Review,
    ReviewDecision,
    ReviewPolicy,
    RolloutApprovalOutbox,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(ReviewPolicy)
class ReviewPolicyAdmin(ReadOnlyAdmin):
    list_display = ("target", "model", "required_roles", "requester_may_approve", "updated_at")


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ("pk", "version", "target", "state", "source", "opened_at", "expires_at")
    list_filter = ("state", "target", "source")


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(ReadOnlyAdmin):
    list_display = ("review", "reviewer", "role", "verdict", "active", "decided_at")
    list_filter = ("verdict", "active")


@admin.register(PubSubMessage)
class PubSubMessageAdmin(ReadOnlyAdmin):
    list_display = ("message_id", "action", "outcome", "rollout", "review", "received_at")
    list_filter = ("outcome", "action")
    search_fields = ("message_id", "rollout")


@admin.register(RolloutApprovalOutbox)
class RolloutApprovalOutboxAdmin(ReadOnlyAdmin):
    list_display = ("pk", "review", "rollout", "approved", "state", "attempts", "sent_at")
    list_filter = ("state", "approved")
    search_fields = ("rollout",)
