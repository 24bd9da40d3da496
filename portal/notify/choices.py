"""Event types, body formats and delivery states of notifications."""

from django.db import models


class EventType(models.TextChoices):
    """The events an endpoint may subscribe to. The base knows their names only; the
    apps that raise them (the review board) call `notification_publish`."""

    REVIEW_OPENED = "review.opened", "Review opened"
    REVIEW_DECIDED = "review.decided", "Review decided (approved or rejected)"
    REVIEW_EXPIRED = "review.expired", "Review expired"
    GOVERNANCE_CHANGE_PROPOSED = "governance.change_proposed", "Governance change proposed"
    GOVERNANCE_CHANGE_DECIDED = "governance.change_decided", "Governance change decided"
    GOVERNANCE_CHANGED = "governance.changed", "Board role or policy changed"
    INCIDENT_CRITICAL = "incident.critical", "Critical incident opened"
    ROLLOUT_STARTED = "rollout.started", "Rollout started"
    ROLLOUT_PROGRESSED = "rollout.progressed", "Rollout advanced a step or was promoted"
    ROLLOUT_PAUSED = "rollout.paused", "Rollout paused for a decision"
    ROLLOUT_FINISHED = "rollout.finished", "Rollout succeeded, rolled back or aborted"


# Sent by "send test event"; every endpoint receives it, whatever it subscribes to.
TEST_EVENT_TYPE = "portal.test"


class WebhookFormat(models.TextChoices):
    JSON = "json", "JSON (any URL)"
    SLACK = "slack", "Slack-compatible ({text, blocks})"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
