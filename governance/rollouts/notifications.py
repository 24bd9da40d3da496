"""What rollouts tell people and other systems, through portal.notify: every
transition (started, a step advanced or promoted, paused, finished) by e-mail to
DevOps and to the webhooks subscribed to the transition's event type.

Called inside the transaction of the decision it announces, so the outbox rows commit
with it. Payloads name people by pseudonymous id only; e-mails link to the rollout's
page instead of repeating the analysis.
"""

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse

from governance.rollouts.models import Rollout
from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.notify.choices import EventType
from portal.notify.services import notification_publish

# Audit action of a transition -> (event type, words for the summary).
TRANSITIONS: dict[str, tuple[str, str]] = {
    "rollout.started": (EventType.ROLLOUT_STARTED, "started"),
    "rollout.advanced": (EventType.ROLLOUT_PROGRESSED, "advanced"),
    "rollout.promoted": (EventType.ROLLOUT_PROGRESSED, "was promoted by a person"),
    "rollout.paused": (EventType.ROLLOUT_PAUSED, "paused"),
    "rollout.succeeded": (EventType.ROLLOUT_FINISHED, "succeeded"),
    "rollout.rolled_back": (EventType.ROLLOUT_FINISHED, "was rolled back"),
    "rollout.aborted": (EventType.ROLLOUT_FINISHED, "was aborted"),
    "rollout.failed": (EventType.ROLLOUT_FINISHED, "failed"),
}


def rollout_url(rollout: Rollout) -> str:
    return settings.PORTAL_BASE_URL + reverse("governance:rollout_detail", args=[rollout.pk])


def rollout_people_told() -> QuerySet[User]:
    """Active people holding the DevOps role: they operate rollouts."""
    return (
        User.objects.filter(
            is_active=True,
            is_machine=False,
            role_grants__role=Role.DEVOPS,
            role_grants__revoked_at__isnull=True,
        )
        .distinct()
        .order_by("pk")
    )


def rollout_transition_notify(*, rollout: Rollout, action: str, actor: Actor, **extra: Any) -> None:
    """Announce one transition of `rollout` (`action` is its audit action, one of
    TRANSITIONS; others announce nothing). The event id carries the rollout's revision,
    so the same transition published twice (a repeated task) reaches nobody twice.
    Side effects: outbox rows (portal.notify), sent after commit."""
    if action not in TRANSITIONS:
        return
    event_type, words = TRANSITIONS[action]
    subject = (
        f"{rollout.model.slug} {rollout.version.version} to {rollout.get_target_display().lower()}"
    )
    summary = f"Rollout {rollout.pk} {words}: {subject}, canary at {rollout.weight}%"
    notification_publish(
        event_type=event_type,
        event_id=f"rollout-{rollout.pk}-r{rollout.revision}-{action.removeprefix('rollout.')}",
        summary=summary,
        payload={
            "rollout": rollout.pk,
            "url": rollout_url(rollout),
            "transition": action,
            "model": rollout.model.slug,
            "version": rollout.version.version,
            "stable_version": rollout.stable_version.version,
            "target": rollout.target,
            "state": rollout.state,
            "step": rollout.step_index,
            "weight": rollout.weight,
            "outcome": rollout.outcome,
            **extra,
        },
        email_recipients=rollout_people_told(),
        actor=actor,
        email_text=rollout.outcome,
    )
