"""Writes for the gate's stored answer (GateState): the review services call these
inside the transaction of every change that can move a gate, so a gate request reads
one row that is never behind the reviews.

Lock order, as everywhere in the portal: the version row, then the review row, then
the gate's row (`gate_state_lock`), and the audit chain head last. The version lock
already serialises every writer of a version's gate rows; taking the gate row's own
lock before the first audit event keeps the order explicit for any future writer that
does not hold it.
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from governance.models import ModelVersion
from governance.reviews.models import GateState, Review
from governance.reviews.selectors import gate_facts
from portal.audit.actors import Actor
from portal.audit.services import audit_record


def gate_state_lock(*, version_id: int, target: str) -> None:
    """Lock the gate's row of (version, target), if it exists. Call after locking the
    review and before the first audit event of the transaction."""
    GateState.objects.select_for_update().filter(version_id=version_id, target=target).first()


def gate_state_refresh(*, version_id: int, target: str) -> GateState | None:
    """Store the gate's answer for (version, target) as the reviews say it now.

    Call inside the transaction of the change, after the change is saved. Side effects:
    the row created, updated (its revision + 1 and any cached attestation dropped, so
    an attestation of an older answer is never handed out again) or deleted when no
    review speaks for the pair any more. No audit event: the row is derived from the
    audited review changes.
    """
    with transaction.atomic():
        facts = gate_facts(version_id=version_id, target=target)
        row = (
            GateState.objects.select_for_update()
            .filter(version_id=version_id, target=target)
            .first()
        )
        if facts is None:
            if row is not None:
                row.delete()
            return None
        values = {
            "review_id": facts.review_id,
            "review_state": facts.review_state,
            "expires_at": facts.expires_at,
            "approvals": [
                {**approval, "decided_at": approval["decided_at"].isoformat()}
                for approval in facts.approvals
            ],
            "missing_roles": facts.missing_roles,
            "failed_checks": facts.failed_checks,
            "refreshed_at": timezone.now(),
            "attestation": "",
            "attestation_key": "",
            "attestation_expires_at": None,
        }
        if row is None:
            return GateState.objects.create(version_id=version_id, target=target, **values)
        for name, value in values.items():
            setattr(row, name, value)
        row.revision += 1
        row.save()
        return row


@dataclass
class GateBackfill:
    """What `gate_states_backfill` found: (version id, target) pairs with reviews but no
    stored answer (`missing`), and stored answers that differed from the reviews
    (`stale`; none is expected: every review service refreshes its row)."""

    missing: list[tuple[int, str]] = field(default_factory=list)
    stale: list[tuple[int, str]] = field(default_factory=list)
    dry_run: bool = True


def _stored_facts(row: GateState) -> tuple:
    return (
        row.review_id,
        row.review_state,
        row.expires_at,
        row.approvals,
        row.missing_roles,
        row.failed_checks,
    )


def _fresh_facts(version_id: int, target: str) -> tuple | None:
    facts = gate_facts(version_id=version_id, target=target)
    if facts is None:
        return None
    approvals = [{**a, "decided_at": a["decided_at"].isoformat()} for a in facts.approvals]
    return (
        facts.review_id,
        facts.review_state,
        facts.expires_at,
        approvals,
        facts.missing_roles,
        facts.failed_checks,
    )


def gate_states_backfill(*, actor: Actor, dry_run: bool = False) -> GateBackfill:
    """Store the gate's answer for every (version, target) reviewed before answers were
    stored, and bring any stored answer that differs from its reviews back in line.

    Idempotent: a second run finds nothing to do. With `dry_run`, only reports. Each
    pair is written in its own short transaction, with the version row locked first as
    every review service does, so a decision made meanwhile is never overwritten by an
    older picture. Side effects (not dry run): GateState rows created or refreshed; one
    audit event `gate_state.backfilled` (counts) when anything was written.
    """
    report = GateBackfill(dry_run=dry_run)
    stored = GateState.objects.filter(version_id=OuterRef("version_id"), target=OuterRef("target"))
    report.missing = sorted(
        set(Review.objects.filter(~Exists(stored)).values_list("version_id", "target").distinct())
    )
    report.stale = [
        (row.version_id, row.target)
        for row in GateState.objects.order_by("version_id", "target").iterator()
        if _stored_facts(row) != _fresh_facts(row.version_id, row.target)
    ]
    if dry_run or not (report.missing or report.stale):
        return report
    for version_id, target in [*report.missing, *report.stale]:
        with transaction.atomic():
            ModelVersion.objects.select_for_update().filter(pk=version_id).first()
            gate_state_refresh(version_id=version_id, target=target)
    with transaction.atomic():
        audit_record(
            action="gate_state.backfilled",
            actor=actor,
            object_type="gate_state",
            payload={"created": len(report.missing), "refreshed": len(report.stale)},
        )
    return report
