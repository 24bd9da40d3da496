"""Reads for the webhook pages. Query counts do not depend on the number of rows."""

from django.db.models import Count, Prefetch, Q, QuerySet

from portal.notify.choices import DeliveryState
from portal.notify.models import WebhookDelivery, WebhookEndpoint

RECENT_DELIVERIES = 5


def webhook_endpoints_list() -> QuerySet[WebhookEndpoint]:
    """Active endpoints first; each carries `recent_deliveries` (newest first) and the
    counts `pending_count` and `failed_count`."""
    return (
        WebhookEndpoint.objects.select_related("created_by")
        .annotate(
            pending_count=Count("deliveries", filter=Q(deliveries__state=DeliveryState.PENDING)),
            failed_count=Count("deliveries", filter=Q(deliveries__state=DeliveryState.FAILED)),
        )
        .prefetch_related(
            Prefetch(
                "deliveries",
                queryset=WebhookDelivery.objects.order_by("-created_at", "-pk")[:RECENT_DELIVERIES],
                to_attr="recent_deliveries",
            )
        )
        .order_by("-active", "name", "pk")
    )


def webhook_endpoint_get(*, pk: int) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(pk=pk).first()


def webhook_delivery_get(*, pk: int) -> WebhookDelivery | None:
    return WebhookDelivery.objects.select_related("endpoint").filter(pk=pk).first()
