"""Writes for incidents: Alertmanager notifications opening and updating them, people
acknowledging and closing them.

Lock order (the portal's): the incident row first, the audit chain head last. Two
deliveries of the same new alert can race to open its incident; the partial unique
constraint (one incident per fingerprint that is not closed) lets one win, and the
loser, inside its savepoint, reads and updates the winner's.
"""

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from governance.selectors.registry import model_get
from governance.training.services import run_start
from monitoring.alertmanager import Alert, Notification
from monitoring.choices import (
    ActionKind,
    ActionOutcome,
    IncidentSource,
    IncidentStatus,
    Severity,
    TimelineKind,
)
from monitoring.models import AlertDelivery, Incident, IncidentAction, IncidentEvent
from monitoring.policy import actions_for
from portal.accounts.choices import BOARD_ROLES
from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.notify.choices import EventType
from portal.notify.services import notification_publish
from portal.security.services import refusal_source, security_refusal_record

ALERTMANAGER = Actor.system("alertmanager")
REFUSED_ACTION = "hook.alertmanager.refused"


def _actor_label(actor: Actor) -> str:
    return f"{actor.type}:{actor.id}" if actor.id else actor.type


@dataclass
class IntakeReceipt:
    recorded: int = 0
    duplicates: int = 0
    incidents: list[int] = field(default_factory=list)


def alertmanager_refuse(*, reason: str, status: int, client_ip: str | None) -> None:
    """Count a notification the hook turned away (no or a wrong token, a body that is
    no webhook payload). Anyone can send those, so they are counted per client address
    and window, the window's first audited with its reason; the reason never contains
    the token. Side effects: the refusal window's count; for its first refusal, audit
    `hook.alertmanager.refused` (actor anonymous)."""
    security_refusal_record(
        kind=REFUSED_ACTION,
        source=refusal_source(Actor.anonymous(), client_ip),
        action=REFUSED_ACTION,
        actor=Actor.anonymous(),
        details={"reason": reason[:300], "status": status},
        object_type="hook",
        object_id="alertmanager",
        client_ip=client_ip,
    )


def _model_for(labels: dict[str, str]):
    try:
        return model_get(slug=labels.get("model", ""))
    except Http404:
        return None


def _timeline(incident: Incident, kind: str, actor: Actor, **detail: Any) -> IncidentEvent:
    return IncidentEvent.objects.create(
        incident=incident, kind=kind, actor=_actor_label(actor), detail=detail
    )


def _open(alert: Alert, client_ip: str | None) -> Incident:
    labels = alert.labels
    model = _model_for(labels)
    severity = labels.get("severity", Severity.WARNING)
    incident = Incident.objects.create(
        fingerprint=alert.fingerprint,
        source=IncidentSource.ALERTMANAGER,
        status=IncidentStatus.FIRING,
        severity=severity if severity in Severity.values else Severity.WARNING,
        title=f"{labels['alertname']}" + (f" on {model.slug}" if model else ""),
        summary=alert.annotations.get("summary", "") or alert.annotations.get("description", ""),
        labels=labels,
        annotations=alert.annotations,
        model=model,
        owner=model.owner if model else None,
        started_at=alert.starts_at,
    )
    audit_record(
        action="incident.opened",
        actor=ALERTMANAGER,
        object_type="incident",
        object_id=incident.pk,
        payload={
            "fingerprint": alert.fingerprint,
            "alertname": labels["alertname"],
            "severity": incident.severity,
            "model": model.slug if model else None,
            "owner_id": incident.owner_id,
        },
        client_ip=client_ip,
    )
    return incident


def _apply(alert: Alert, client_ip: str | None) -> Incident | None:
    incident = (
        Incident.objects.select_for_update()
        .filter(fingerprint=alert.fingerprint)
        .exclude(status=IncidentStatus.CLOSED)
        .first()
    )
    if alert.status == "firing":
        # A firing of an episode already reported resolved is stale: a peer
        # Alertmanager or another group repeating it, or the resolution overtook it.
        # Reopening (or opening) on it would leave an incident firing that no
        # resolution will ever come for.
        if AlertDelivery.objects.filter(
            fingerprint=alert.fingerprint, starts_at=alert.starts_at, status="resolved"
        ).exists():
            return None
        if incident is None:
            try:
                with transaction.atomic():
                    incident = _open(alert, client_ip)
            except IntegrityError:
                # Another delivery opened it between our read and our insert.
                incident = (
                    Incident.objects.select_for_update()
                    .filter(fingerprint=alert.fingerprint)
                    .exclude(status=IncidentStatus.CLOSED)
                    .get()
                )
            else:
                _timeline(
                    incident, TimelineKind.FIRED, ALERTMANAGER, starts_at=str(alert.starts_at)
                )
                return incident
        if incident.status == IncidentStatus.RESOLVED:
            incident.status = IncidentStatus.FIRING
            incident.resolved_at = None
            incident.save(update_fields=["status", "resolved_at"])
        _timeline(incident, TimelineKind.FIRED, ALERTMANAGER, starts_at=str(alert.starts_at))
        return incident
    if incident is None or incident.status == IncidentStatus.RESOLVED:
        return incident  # resolved before we heard of it, or already told
    incident.status = IncidentStatus.RESOLVED
    incident.resolved_at = alert.ends_at or timezone.now()
    incident.save(update_fields=["status", "resolved_at"])
    _timeline(incident, TimelineKind.RESOLVED, ALERTMANAGER, ends_at=str(incident.resolved_at))
    audit_record(
        action="incident.resolved",
        actor=ALERTMANAGER,
        object_type="incident",
        object_id=incident.pk,
        payload={"fingerprint": alert.fingerprint},
        client_ip=client_ip,
    )
    return incident


def alertmanager_receive(*, notification: Notification, client_ip: str | None) -> IntakeReceipt:
    """Record each alert of a notification once and open or update its incident.

    An alert already received with the same group key, fingerprint, start time and
    status is a duplicate (Alertmanager repeats notifications) and changes nothing.
    A firing alert opens an incident (owner: the owner of the model in its `model`
    label) or adds "fired" to the open one's timeline; a resolved alert resolves it. A
    firing of an episode (fingerprint, start) already received as resolved is stale
    and changes no incident.
    Each firing then gets the actions its labels call for (`incident_actions_take`).
    Side effects: AlertDelivery rows; incidents and timeline entries; audit
    `incident.opened` and `incident.resolved`; those of the actions.
    """
    receipt = IntakeReceipt()
    with transaction.atomic():
        for alert in notification.alerts:
            try:
                with transaction.atomic():
                    delivery = AlertDelivery.objects.create(
                        group_key=notification.group_key,
                        fingerprint=alert.fingerprint,
                        starts_at=alert.starts_at,
                        status=alert.status,
                    )
            except IntegrityError:
                receipt.duplicates += 1
                continue
            incident = _apply(alert, client_ip)
            if incident is not None:
                delivery.incident = incident
                delivery.save(update_fields=["incident"])
                receipt.incidents.append(incident.pk)
                if alert.status == "firing":
                    incident_actions_take(incident=incident, alert=alert)
            receipt.recorded += 1
    return receipt


def incident_acknowledge(*, incident: Incident, user: Any, actor: Actor) -> Incident:
    """Someone takes the incident: it becomes theirs if it had no owner. Refuses a
    closed or resolved incident. Side effects: timeline "acknowledged"; audit
    `incident.acknowledged`."""
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.status != IncidentStatus.FIRING:
            raise ValidationError({"status": "Only a firing incident can be acknowledged."})
        incident.status = IncidentStatus.ACKNOWLEDGED
        if incident.owner_id is None:
            incident.owner = user
        incident.save(update_fields=["status", "owner"])
        _timeline(incident, TimelineKind.ACKNOWLEDGED, actor)
        audit_record(
            action="incident.acknowledged",
            actor=actor,
            object_type="incident",
            object_id=incident.pk,
            payload={"owner_id": incident.owner_id},
        )
    return incident


def incident_close(*, incident: Incident, note: str, actor: Actor) -> Incident:
    """Close an incident with a note saying why. Refuses an empty note and a closed
    incident. Side effects: timeline "closed" with the note; audit `incident.closed`."""
    note = note.strip()
    if not note:
        raise ValidationError({"note": "Say why the incident is closed."})
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.status == IncidentStatus.CLOSED:
            raise ValidationError({"status": "The incident is closed already."})
        incident.status = IncidentStatus.CLOSED
        incident.closed_at = timezone.now()
        incident.save(update_fields=["status", "closed_at"])
        _timeline(incident, TimelineKind.CLOSED, actor, note=note[:2000])
        audit_record(
            action="incident.closed",
            actor=actor,
            object_type="incident",
            object_id=incident.pk,
            payload={"note_length": len(note)},
        )
    return incident


def _retrain(incident: Incident, alert: Alert) -> tuple[str, str, str]:
    if incident.model is None:
        return ActionOutcome.NOT_TAKEN, "", "The alert names no registered model."
    try:
        run = run_start(
            model=incident.model,
            trigger="alert",
            reason=f"Incident #{incident.pk}: {alert.labels['alertname']}"[:300],
            actor=ALERTMANAGER,
        )
    except ValidationError as refused:
        # Typically a run of the model already queued or running: it answers this too.
        return ActionOutcome.NOT_TAKEN, "", " ".join(refused.messages)[:300]
    return ActionOutcome.TAKEN, f"pipeline_run:{run.pk}", ""


def _notify(incident: Incident, alert: Alert) -> tuple[str, str, str]:
    recipients = User.objects.filter(
        is_active=True,
        is_machine=False,
        role_grants__role__in=sorted(BOARD_ROLES),
        role_grants__revoked_at__isnull=True,
    ).distinct()
    notification_publish(
        event_type=EventType.INCIDENT_CRITICAL,
        event_id=f"incident-{incident.fingerprint}-{alert.starts_at.isoformat()}",
        summary=f"Critical incident #{incident.pk}: {incident.title}",
        payload={
            "incident": incident.pk,
            "model": incident.model.slug if incident.model else None,
            "alertname": alert.labels["alertname"],
            "url": f"/monitoring/incidents/{incident.pk}/",
        },
        email_recipients=recipients,
        actor=ALERTMANAGER,
        email_text=incident.summary,
    )
    return ActionOutcome.TAKEN, f"{recipients.count()} people", ""


_ACTIONS = {ActionKind.RETRAIN: _retrain, ActionKind.NOTIFY: _notify}


def incident_actions_take(*, incident: Incident, alert: Alert) -> list[IncidentAction]:
    """Take the actions the policy names for one firing of an alert, each at most once
    per firing (fingerprint and start time), whoever delivers the alert again.

    Call inside the intake's transaction, with the incident locked. Side effects: an
    IncidentAction row and an "action taken" timeline entry per action; a retraining
    run (its own audit event, queued after commit); the board and DevOps notified
    (outbox rows); audit `incident.action_taken` per action.
    """
    taken = []
    for kind in actions_for(labels=alert.labels):
        if IncidentAction.objects.filter(
            fingerprint=alert.fingerprint, starts_at=alert.starts_at, kind=kind
        ).exists():
            continue
        outcome, reference, reason = _ACTIONS[kind](incident, alert)
        action = IncidentAction.objects.create(
            incident=incident,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            kind=kind,
            outcome=outcome,
            reference=reference,
            reason=reason,
        )
        _timeline(
            incident,
            TimelineKind.ACTION_TAKEN,
            ALERTMANAGER,
            action=kind,
            outcome=outcome,
            **({"reference": reference} if reference else {}),
            **({"reason": reason} if reason else {}),
        )
        audit_record(
            action="incident.action_taken",
            actor=ALERTMANAGER,
            object_type="incident",
            object_id=incident.pk,
            payload={"kind": kind, "outcome": outcome, "reference": reference},
        )
        taken.append(action)
    return taken


CANARY_ANALYSIS = Actor.system("canary_analysis")


def incident_open_for_rollback(
    *,
    rollout_id: int,
    model: Any,
    title: str,
    reason: str,
    automatic: bool,
    analysis: dict[str, Any] | None,
    actor: Actor,
) -> Incident:
    """Open the incident of a rolled-back rollout (source canary_analysis), once per
    rollout: a repeated announcement returns the incident already open.

    Call inside the rollback's transaction (the rollout's row is locked): the incident
    commits or rolls back with it. Severity critical when the canary analysis decided
    the rollback, warning when a person did. Side effects: an Incident with "fired" and
    "action taken" (the rollback) on its timeline and an IncidentAction of kind
    rollback; audit `incident.opened`.
    """
    fingerprint = f"rollout-{rollout_id}-rolled-back"
    found = Incident.objects.filter(fingerprint=fingerprint).first()
    if found is not None:
        return found
    now = timezone.now()
    incident = Incident.objects.create(
        fingerprint=fingerprint,
        source=IncidentSource.CANARY_ANALYSIS,
        status=IncidentStatus.FIRING,
        severity=Severity.CRITICAL if automatic else Severity.WARNING,
        title=title[:200],
        summary=reason,
        labels={"model": model.slug, "rollout": str(rollout_id)},
        annotations={"analysis": analysis} if analysis else {},
        model=model,
        owner=model.owner,
        started_at=now,
    )
    _timeline(incident, TimelineKind.FIRED, actor, rollout=rollout_id, automatic=automatic)
    IncidentAction.objects.create(
        incident=incident,
        fingerprint=fingerprint,
        starts_at=now,
        kind=ActionKind.ROLLBACK,
        outcome=ActionOutcome.TAKEN,
        reference=f"rollout:{rollout_id}",
        reason=reason[:300],
    )
    _timeline(
        incident,
        TimelineKind.ACTION_TAKEN,
        actor,
        action=ActionKind.ROLLBACK,
        outcome=ActionOutcome.TAKEN,
        reference=f"rollout:{rollout_id}",
    )
    audit_record(
        action="incident.opened",
        actor=actor,
        object_type="incident",
        object_id=incident.pk,
        payload={
            "fingerprint": fingerprint,
            "source": IncidentSource.CANARY_ANALYSIS,
            "severity": incident.severity,
            "model": model.slug,
            "rollout": rollout_id,
            "automatic": automatic,
            "owner_id": incident.owner_id,
        },
    )
    return incident
