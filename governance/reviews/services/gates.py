"""Writes for the gate's stored answer (GateState): the review services call these
inside the transaction of every change that can move a gate, so a gate request reads
one row that is never behind the reviews.

Lock order, as everywhere in the portal: the version row, then the review row, then
the gate's row (`gate_state_lock`), and the audit chain head last. The version lock
already serialises every writer of a version's gate rows; taking the gate row's own
lock before the first audit event keeps the order explicit for any future writer that
does not hold it.
"""

from django.db import transaction
from django.utils import timezone

from governance.reviews.models import GateState
from governance.reviews.selectors import gate_facts


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
