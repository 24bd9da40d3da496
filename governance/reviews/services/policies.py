"""Writes to review policies. Admins edit them in the portal; every change is audited
with what changed. Reviews already open keep the snapshot they were opened under.

A change that loosens a policy (governance.reviews.policy_changes) waits for a second
portal admin as a change request (portal.changes); one that only tightens applies at
once.
"""

import math
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.choices import Target
from governance.models import RegisteredModel
from governance.reviews.models import POLICY_SNAPSHOT_FIELDS, ReviewPolicy
from governance.reviews.policy_changes import (
    POLICY_OVERRIDE_DELETE_KIND,
    POLICY_UPDATE_KIND,
    policy_loosenings,
)
from portal.accounts.choices import BOARD_ROLES
from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.changes.models import ChangeRequest
from portal.changes.services import change_propose, governance_event_publish
from portal.jsonvalues import json_stored_form, json_value_check
from portal.notify.choices import EventType

AUDIT_OBJECT_TYPE = "review_policy"
MAX_QUORUM = 5
BOOLEAN_FIELDS = (
    "requester_may_approve",
    "check_card_complete",
    "check_fairness_present",
    "check_lineage_complete",
    "check_metrics_not_worse",
    "check_previous_target",
)


def _policy_audit_id(policy: ReviewPolicy) -> str:
    return f"{policy.model.slug if policy.model_id else 'default'}/{policy.target}"


JSON_FIELDS = ("required_roles", "metric_tolerances", "metric_directions")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def policy_clean(*, data: dict[str, Any]) -> dict[str, Any]:
    """Check the editable fields of a policy; ValidationError names each field at fault.

    `required_roles` maps board roles to a quorum of 1 to 5 (at least one role);
    tolerances are numbers of 0 or more (or null: leave the metric unjudged);
    directions are "lower" or "higher".
    """
    json_value_check({field: data.get(field) for field in JSON_FIELDS})
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    roles = data.get("required_roles")
    if not isinstance(roles, dict) or not roles:
        errors["required_roles"] = "Name at least one board role that must approve."
    else:
        for role, count in roles.items():
            if role not in BOARD_ROLES:
                errors[f"required_roles.{role}"] = "Only board roles approve reviews."
            elif isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 5:
                errors[f"required_roles.{role}"] = f"A quorum is a whole number, 1 to {MAX_QUORUM}."
        cleaned["required_roles"] = {role: roles[role] for role in sorted(roles)}
    for field in BOOLEAN_FIELDS:
        value = data.get(field)
        if not isinstance(value, bool):
            errors[field] = "Must be true or false."
        cleaned[field] = value
    for field in ("review_open_days", "approval_valid_days"):
        value = data.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 365:
            errors[field] = "A whole number of days, 1 to 365."
        cleaned[field] = value
    default = data.get("metric_tolerance_default")
    if not _is_number(default) or not 0 <= default <= 10:
        errors["metric_tolerance_default"] = "A share from 0 to 10 (0.05 is 5% worse)."
    cleaned["metric_tolerance_default"] = default
    tolerances = data.get("metric_tolerances") or {}
    if not isinstance(tolerances, dict):
        errors["metric_tolerances"] = "Must be an object of metric name to tolerance."
        tolerances = {}
    for name, value in tolerances.items():
        if value is not None and (not _is_number(value) or not 0 <= value <= 10):
            errors[f"metric_tolerances.{name}"] = "A share from 0 to 10, or empty to skip."
    cleaned["metric_tolerances"] = tolerances
    directions = data.get("metric_directions") or {}
    if not isinstance(directions, dict):
        errors["metric_directions"] = "Must be an object of metric name to lower or higher."
        directions = {}
    for name, value in directions.items():
        if value not in ("lower", "higher"):
            errors[f"metric_directions.{name}"] = 'Either "lower" or "higher" (which is better).'
    cleaned["metric_directions"] = directions
    if errors:
        raise ValidationError(errors)
    # What the columns give back (a tolerance of -0 reads back as 0.0 from jsonb), so a
    # save that changes nothing compares equal and the audit records the stored value.
    return json_stored_form(cleaned)


def _rules(policy: ReviewPolicy) -> dict[str, Any]:
    return {field: getattr(policy, field) for field in POLICY_SNAPSHOT_FIELDS}


def _proposer(actor: Actor) -> User | None:
    return User.objects.filter(pk=actor.id).first() if actor.type == "user" else None


def _board_told_policy_changed(policy: ReviewPolicy, *, actor: Actor, event_id: str) -> None:
    governance_event_publish(
        event_type=EventType.GOVERNANCE_CHANGED,
        event_id=event_id,
        summary=f"Review policy {_policy_audit_id(policy)} changed",
        payload={"policy": policy.pk},
        actor=actor,
    )


def policy_update(
    *, policy: ReviewPolicy, data: dict[str, Any], actor: Actor, client_ip: str | None = None
) -> ReviewPolicy | ChangeRequest:
    """Change a policy's rules (every field of POLICY_SNAPSHOT_FIELDS must be given).

    Open reviews are not affected: they keep their snapshot. A change that loosens the
    policy is only proposed: a pending ChangeRequest is returned and the policy stays
    as it is until another portal admin approves. Side effects: audit
    `review_policy.updated` with each changed field's old and new value (nothing is
    written when nothing changed) and an e-mail to the board; or those of
    `change_propose`.
    """
    cleaned = policy_clean(data=data)
    with transaction.atomic():
        policy = (
            ReviewPolicy.objects.select_for_update(of=("self",))
            .select_related("model")
            .get(pk=policy.pk)
        )
        loosenings = policy_loosenings(before=_rules(policy), after=cleaned)
        if loosenings:
            return change_propose(
                kind=POLICY_UPDATE_KIND,
                subject_type=AUDIT_OBJECT_TYPE,
                subject_id=str(policy.pk),
                summary=f"Loosen policy {_policy_audit_id(policy)}: " + "; ".join(loosenings),
                before=_rules(policy),
                after=cleaned,
                proposed_by=_proposer(actor),
                actor=actor,
                client_ip=client_ip,
            )
        return _policy_write(policy, cleaned=cleaned, actor=actor, client_ip=client_ip)


def _policy_write(
    policy: ReviewPolicy,
    *,
    cleaned: dict[str, Any],
    actor: Actor,
    client_ip: str | None = None,
    change: ChangeRequest | None = None,
) -> ReviewPolicy:
    """Write the rules to the locked `policy`, audit and tell the board."""
    changes = {
        field: {"from": getattr(policy, field), "to": cleaned[field]}
        for field in POLICY_SNAPSHOT_FIELDS
        if getattr(policy, field) != cleaned[field]
    }
    if not changes:
        return policy
    for field in changes:
        setattr(policy, field, cleaned[field])
    policy.updated_at = timezone.now()
    policy.save()
    payload: dict[str, Any] = {"policy": policy.pk, "changes": changes}
    if change is not None:
        payload.update(change=change.pk, proposed_by=change.proposed_by_actor)
    event = audit_record(
        action="review_policy.updated",
        actor=actor,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=_policy_audit_id(policy),
        payload=payload,
        client_ip=client_ip,
    )
    _board_told_policy_changed(policy, actor=actor, event_id=f"policy-event-{event.sequence}")
    return policy


def policy_change_apply(*, change: ChangeRequest, actor: Actor) -> None:
    """Apply an approved loosening (the ChangeKind of POLICY_UPDATE_KIND)."""
    policy = (
        ReviewPolicy.objects.select_for_update(of=("self",))
        .select_related("model")
        .filter(pk=int(change.subject_id))
        .first()
    )
    if policy is None or _rules(policy) != change.before:
        raise ValidationError({"change": "The policy changed since this was proposed."})
    _policy_write(policy, cleaned=change.after, actor=actor, change=change)


def policy_override_create(
    *, model: RegisteredModel, target: str, actor: Actor, client_ip: str | None = None
) -> ReviewPolicy:
    """Give one model its own policy for a target, starting as a copy of the default.

    Side effects: audit `review_policy.created`.
    """
    if target not in Target.values:
        raise ValidationError({"target": f"No target {target!r}."})
    default = ReviewPolicy.objects.filter(model__isnull=True, target=target).first()
    copied = {f: getattr(default, f) for f in POLICY_SNAPSHOT_FIELDS} if default else {}
    try:
        with transaction.atomic():
            policy = ReviewPolicy.objects.create(model=model, target=target, **copied)
            audit_record(
                action="review_policy.created",
                actor=actor,
                object_type=AUDIT_OBJECT_TYPE,
                object_id=_policy_audit_id(policy),
                payload={"policy": policy.pk, "copied_from": default.pk if default else None},
                client_ip=client_ip,
            )
    except IntegrityError:
        raise ValidationError(
            {"target": f"{model.slug} already has its own policy for {target}."}
        ) from None
    return policy


def policy_override_delete(
    *, policy: ReviewPolicy, actor: Actor, client_ip: str | None = None
) -> ChangeRequest | None:
    """Remove a model's own policy; the target's default applies again. Defaults cannot
    be removed. When the default is looser than the override, this is only proposed
    and the pending ChangeRequest is returned. Side effects: audit
    `review_policy.deleted` with the rules it held and an e-mail to the board; or those
    of `change_propose`."""
    if policy.model_id is None:
        raise ValidationError({"policy": "A target's default policy cannot be removed."})
    policy = ReviewPolicy.objects.select_related("model").get(pk=policy.pk)
    default = ReviewPolicy.objects.filter(model__isnull=True, target=policy.target).first()
    loosenings = (
        policy_loosenings(before=_rules(policy), after=_rules(default)) if default else ["no rules"]
    )
    if loosenings:
        return change_propose(
            kind=POLICY_OVERRIDE_DELETE_KIND,
            subject_type=AUDIT_OBJECT_TYPE,
            subject_id=str(policy.pk),
            summary=f"Remove the stricter policy {_policy_audit_id(policy)}: "
            + "; ".join(loosenings),
            before=_rules(policy),
            after=_rules(default) if default else {},
            proposed_by=_proposer(actor),
            actor=actor,
            client_ip=client_ip,
        )
    _policy_delete(policy, actor=actor, client_ip=client_ip)
    return None


def policy_override_delete_apply(*, change: ChangeRequest, actor: Actor) -> None:
    """Apply an approved removal (the ChangeKind of POLICY_OVERRIDE_DELETE_KIND)."""
    policy = (
        ReviewPolicy.objects.select_for_update(of=("self",))
        .select_related("model")
        .filter(pk=int(change.subject_id))
        .first()
    )
    if policy is None or _rules(policy) != change.before:
        raise ValidationError({"change": "The policy changed since this was proposed."})
    _policy_delete(policy, actor=actor)


def _policy_delete(policy: ReviewPolicy, *, actor: Actor, client_ip: str | None = None) -> None:
    with transaction.atomic():
        _board_told_policy_changed(policy, actor=actor, event_id=f"policy-deleted-{policy.pk}")
        audit_record(
            action="review_policy.deleted",
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=_policy_audit_id(policy),
            payload={"policy": policy.pk, "rules": policy.snapshot()},
            client_ip=client_ip,
        )
        policy.delete()
