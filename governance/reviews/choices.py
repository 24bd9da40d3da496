"""States, verdicts, sources and check names of the review board."""

from django.db import models


class ReviewState(models.TextChoices):
    PENDING = "pending", "Waiting for decisions"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


# Still waiting for the board.
OPEN_STATES: tuple[str, ...] = (ReviewState.PENDING, ReviewState.CHANGES_REQUESTED)
# A review in one of these states is the one that speaks for its (version, target):
# at most one at a time, and evidence changes send it back to pending.
LIVE_STATES: tuple[str, ...] = (*OPEN_STATES, ReviewState.APPROVED)
FINAL_STATES: tuple[str, ...] = (ReviewState.APPROVED, ReviewState.REJECTED, ReviewState.EXPIRED)


class Verdict(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
    REQUEST_CHANGES = "request_changes", "Request changes"
    # Takes back the member's own earlier approval or change request; a record of its
    # own, since decisions are never edited.
    WITHDRAW = "withdraw", "Withdraw my decision"


VERDICTS_NEEDING_COMMENT: frozenset[str] = frozenset({Verdict.REJECT, Verdict.REQUEST_CHANGES})


class ReviewSource(models.TextChoices):
    UI = "ui", "Portal"
    CI = "ci", "CI pipeline"
    CLOUD_DEPLOY = "clouddeploy", "Cloud Deploy rollout"


class CheckKey(models.TextChoices):
    CARD_COMPLETE = "card_complete", "Model card complete"
    FAIRNESS_PRESENT = "fairness_present", "Fairness measured across groups"
    LINEAGE_COMPLETE = "lineage_complete", "Lineage complete"
    METRICS_NOT_WORSE = "metrics_not_worse", "Metrics not worse than production"
    PREVIOUS_TARGET_APPROVED = "previous_target_approved", "Approved for the previous target"


# --- Cloud Deploy approvals -----------------------------------------------------------


class PushOutcome(models.TextChoices):
    REVIEW_OPENED = "review_opened", "Review opened"
    REVIEW_EXISTING = "review_existing", "Answered by an existing review"
    IGNORED = "ignored", "Nothing to do"
    REFUSED = "refused", "Refused"


class OutboxState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    # Claimed by a send task for a lease: the call to Cloud Deploy may be in flight.
    SENDING = "sending", "Being sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    # Cloud Deploy no longer waited for an answer when we looked (answered elsewhere).
    SUPERSEDED = "superseded", "Already answered in Cloud Deploy"
    # The review changed (sent back to waiting, or decided again) before this was sent.
    CANCELLED = "cancelled", "Cancelled"


# A rollout takes one answer: these rows have it, or are about to send it.
OUTBOX_LIVE_STATES: tuple[str, ...] = (
    OutboxState.PENDING,
    OutboxState.SENDING,
    OutboxState.FAILED,
    OutboxState.SENT,
    OutboxState.SUPERSEDED,
)
