"""Writes for the canary analysis thresholds of each target (CanaryPolicy).

Lock order: the policy row first, the audit chain head last.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance.choices import Target
from governance.rollouts.models import CANARY_THRESHOLD_FIELDS, CanaryPolicy
from portal.audit.actors import Actor
from portal.audit.services import audit_record


def canary_policy_update(
    *,
    target: str,
    thresholds: dict[str, float],
    actor: Actor,
    client_ip: str | None = None,
) -> CanaryPolicy:
    """Set the canary analysis thresholds of `target` (every field of
    CANARY_THRESHOLD_FIELDS; see CanaryPolicy for units). Rollouts started afterwards
    are judged by them; running ones keep the thresholds they started with.

    Raises ValidationError naming the field: an unknown target, a missing or unknown
    threshold, min_requests below 1 (no traffic is never a pass), a negative limit, a
    latency ratio below 1. Who may call it is the caller's check
    (`may_set_canary_thresholds`).
    Side effects: the CanaryPolicy row created or updated; audit
    `rollout.canary_policy_changed` with the values before and after.
    """
    if target not in Target.values:
        raise ValidationError({"target": f"No target {target!r}."})
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in CANARY_THRESHOLD_FIELDS:
        if name not in thresholds or thresholds[name] is None:
            errors[name] = "Give a value."
            continue
        value = float(thresholds[name])
        if value < 0:
            errors[name] = "Must not be negative."
        values[name] = int(value) if name == "min_requests" else value
    unknown = sorted(set(thresholds) - set(CANARY_THRESHOLD_FIELDS))
    if unknown:
        errors[unknown[0]] = f"Not a canary threshold: {', '.join(unknown)}."
    if "min_requests" in values and values["min_requests"] < 1:
        errors["min_requests"] = "At least 1: a step with no traffic is never a pass."
    for name in ("max_p95_latency_ratio", "max_p99_latency_ratio"):
        if name in values and values[name] < 1:
            errors[name] = "At least 1: a lower limit fails a canary as fast as the stable one."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        policy, created = CanaryPolicy.objects.select_for_update().get_or_create(target=target)
        before = {} if created else policy.thresholds()
        for name, value in values.items():
            setattr(policy, name, value)
        policy.updated_by = actor.ref
        policy.updated_at = timezone.now()
        policy.full_clean()
        policy.save()
        audit_record(
            action="rollout.canary_policy_changed",
            actor=actor,
            object_type="canary_policy",
            object_id=target,
            payload={"target": target, "before": before, "after": policy.thresholds()},
            client_ip=client_ip,
        )
    return policy
