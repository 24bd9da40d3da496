"""What the review board tells people and other systems, through portal.notify: the
board members a new review needs, and everyone involved once it is decided; webhooks
on `review.opened`, `review.decided` and `review.expired`.

Called inside the transaction that opened or decided the review, so the outbox rows
commit with it. Payloads name people by pseudonymous id only (`user:12`), and e-mails
link to the review page instead of repeating its contents.
"""

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.urls import reverse

from governance.reviews.choices import ReviewState, Verdict
from governance.reviews.models import Review
from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.notify.choices import EventType
from portal.notify.services import notification_publish

if TYPE_CHECKING:
    from governance.reviews.services.reviews import ReviewOutcome


def review_url(review: Review) -> str:
    return settings.PORTAL_BASE_URL + reverse("governance:review_detail", args=[review.pk])


def _subject(review: Review) -> str:
    version = review.version
    return f"{version.model.slug} {version.version} to {review.get_target_display().lower()}"


def _role_names(roles: dict[str, int]) -> str:
    return ", ".join(
        f"{Role(role).label.lower() if role in Role.values else role}"
        + (f" ({quorum} people)" if quorum > 1 else "")
        for role, quorum in sorted(roles.items())
    )


def _payload(review: Review, **extra: Any) -> dict[str, Any]:
    return {
        "review": review.pk,
        "url": review_url(review),
        "model": review.version.model.slug,
        "version": review.version.version,
        "target": review.target,
        "state": review.state,
        "source": review.source,
        "external_ref": review.external_ref,
        "requested_by": review.requested_by_actor,
        "required_roles": review.required_roles,
        "failed_checks": review.failed_checks,
        "opened_at": review.opened_at,
        "expires_at": review.expires_at,
        **extra,
    }


def board_members_needed(*, review: Review) -> QuerySet[User]:
    """Active people holding a role the review's policy requires who have no counting
    decision on it yet."""
    return (
        User.objects.filter(
            is_active=True,
            role_grants__revoked_at__isnull=True,
            role_grants__role__in=list(review.required_roles),
        )
        .exclude(review_decisions__review=review, review_decisions__active=True)
        .distinct()
        .order_by("pk")
    )


def review_people_involved(*, review: Review) -> QuerySet[User]:
    """The requester (when a person stands behind the request) and every member who
    decided anything on the review."""
    took_part = Q(pk__in=review.decisions.values("reviewer_id"))
    if review.requested_by_id:
        took_part |= Q(pk=review.requested_by_id)
    return User.objects.filter(took_part, is_active=True).order_by("pk")


def review_opened_notify(*, review: Review, actor: Actor) -> None:
    """Ask the board members the review needs for their decision; `review.opened` to
    the webhooks. Side effects: outbox rows (portal.notify), sent after commit."""
    waiting_for = _role_names(review.required_roles)
    checks = len(review.failed_checks)
    notification_publish(
        event_type=EventType.REVIEW_OPENED,
        event_id=f"review-{review.pk}-opened",
        summary=f"Review {review.pk} needs the board: {_subject(review)}",
        payload=_payload(review),
        email_recipients=board_members_needed(review=review),
        actor=actor,
        email_text=(
            f"It needs approval from: {waiting_for}. "
            f"It expires on {review.expires_at:%Y-%m-%d %H:%M} UTC if undecided."
            + (f" {checks} automated check(s) do not pass yet." if checks else "")
        ),
    )


_OUTCOME_WORDS = {
    ReviewState.APPROVED: "was approved",
    ReviewState.REJECTED: "was rejected",
    ReviewState.EXPIRED: "expired without a decision",
}


def review_decided_notify(*, outcome: "ReviewOutcome", actor: Actor) -> None:
    """Tell the requester and the members who took part how the review ended;
    `review.decided` (approved, rejected) or `review.expired` to the webhooks.
    Side effects: outbox rows (portal.notify), sent after commit."""
    review = outcome.review
    expired = outcome.state == ReviewState.EXPIRED
    words = _OUTCOME_WORDS.get(outcome.state, outcome.state)
    if expired and outcome.previous_state == ReviewState.APPROVED:
        words = "lost its approval: the approval's validity ran out"
    approvals = review.decisions.filter(active=True, verdict=Verdict.APPROVE).order_by("pk")
    event_id = f"review-{review.pk}-{outcome.state}"
    if outcome.decision is not None:
        # An approved review can go back to waiting and be approved again.
        event_id += f"-d{outcome.decision.pk}"
    notification_publish(
        event_type=EventType.REVIEW_EXPIRED if expired else EventType.REVIEW_DECIDED,
        event_id=event_id,
        summary=f"Review {review.pk} {words}: {_subject(review)}",
        payload=_payload(
            review,
            previous_state=outcome.previous_state,
            decided_at=review.decided_at,
            approvals=[{"role": d.role, "reviewer": d.reviewer_ref} for d in approvals],
        ),
        email_recipients=review_people_involved(review=review),
        actor=actor,
    )
