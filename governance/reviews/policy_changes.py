"""Which policy changes loosen the board's control, and so need a second portal admin.

Pure functions over the editable fields of a policy (POLICY_SNAPSHOT_FIELDS); the
services in governance.reviews.services.policies act on the answer.
"""

from typing import Any

POLICY_UPDATE_KIND = "review_policy.update"
POLICY_OVERRIDE_DELETE_KIND = "review_policy.override_delete"

_CHECKS = (
    "check_card_complete",
    "check_fairness_present",
    "check_lineage_complete",
    "check_metrics_not_worse",
    "check_previous_target",
)


def _tolerance(rules: dict[str, Any], metric: str) -> float:
    """How much worse a metric may be; a metric left unjudged (None) may be anything."""
    tolerances = rules.get("metric_tolerances") or {}
    value = tolerances[metric] if metric in tolerances else rules.get("metric_tolerance_default")
    return float("inf") if value is None else float(value)


def policy_loosenings(*, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What in `after` is looser than `before`, in words; empty when nothing is.

    Looser: a board role dropped or its quorum lowered, the requester allowed to
    approve, an automated check switched off, a longer approval validity, a wider
    metric tolerance (a metric left unjudged counts as infinitely wide), or a metric's
    better direction flipped (that turns "worse" into "better").
    """
    reasons: list[str] = []
    roles_before = before.get("required_roles") or {}
    roles_after = after.get("required_roles") or {}
    for role, count in sorted(roles_before.items()):
        if role not in roles_after:
            reasons.append(f"{role} no longer approves")
        elif roles_after[role] < count:
            reasons.append(f"{role} quorum lowered from {count} to {roles_after[role]}")
    if after.get("requester_may_approve") and not before.get("requester_may_approve"):
        reasons.append("the requester may approve their own review")
    for check in _CHECKS:
        if before.get(check) and not after.get(check):
            reasons.append(f"{check} switched off")
    if (after.get("approval_valid_days") or 0) > (before.get("approval_valid_days") or 0):
        reasons.append(
            f"approvals valid {after.get('approval_valid_days')} days, "
            f"not {before.get('approval_valid_days')}"
        )
    metrics = (
        set(before.get("metric_tolerances") or {})
        | set(after.get("metric_tolerances") or {})
        | {""}  # "" stands for every metric the default covers
    )
    for metric in sorted(metrics):
        if _tolerance(after, metric) > _tolerance(before, metric):
            reasons.append(f"wider tolerance for {metric or 'metrics by default'}")
    directions_before = before.get("metric_directions") or {}
    directions_after = after.get("metric_directions") or {}
    for metric in sorted(set(directions_before) | set(directions_after)):
        if directions_before.get(metric) != directions_after.get(metric):
            reasons.append(f"direction of {metric} changed")
    return reasons
