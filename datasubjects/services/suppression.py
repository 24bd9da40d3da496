"""The suppression list (GDPR Art. 21 objection to profiling, Art. 18 restriction, and
Art. 17 erasure): people the training pipelines and the model server leave out.

A person is listed by the keyed hash of each customer id the sources map them to
(`datasubjects.pseudonyms.customer_key`), with the reason and the request that asked
for it. The entries outlive the erasure of everything else about the person: hashes
only. Lifting an entry keeps the row (the record that it applied) and says why.

The portal hands the list to its readers as a file (`pipelines.suppression`): written
when a training run takes its snapshot (governance asks through its hook) and after
every change, so the model server picks a change up without waiting for training.
"""

from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from datasubjects.choices import (
    KIND_SUPPRESSIONS,
    REQUEST_AUDIT_TYPE,
    SUPPRESSION_AUDIT_TYPE,
    RequestKind,
    RequestState,
    SuppressionReason,
)
from datasubjects.models import DataSubjectRequest, Suppression
from datasubjects.permissions import may_handle_requests
from datasubjects.pseudonyms import suppression_key
from datasubjects.selectors import suppression_keys_by_purpose
from datasubjects.services.sources import request_customers_resolve
from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.audit.services import audit_record

# A request closed without being carried out: its follow-up work is not done.
DROPPED_STATES = frozenset({RequestState.REFUSED, RequestState.DUPLICATE})


def suppression_list_path() -> Path:
    """Where the list is written: DSAR_SUPPRESSION_LIST, or beside the lake's snapshots."""
    return Path(
        settings.DSAR_SUPPRESSION_LIST or Path(settings.PIPELINES_LAKE_ROOT) / "suppression.json"
    )


def suppression_list_write(*, purpose: str, actor: Actor | None = None) -> Path:
    """Write the suppression list file (DSAR_SUPPRESSION_LIST) from the current
    suppressions and consent ledger, replacing the old file atomically.

    `purpose` says why it is written (a training run's reference, a change).
    Side effects: the file; records `suppression.list_written` with the number of
    keys per purpose (never the keys).
    """
    from pipelines.suppression import suppression_write  # -- slow

    keys = suppression_keys_by_purpose()
    path = suppression_list_path()
    suppression_write(
        path,
        key=suppression_key(),
        purposes=keys,
        written_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    audit_record(
        action="suppression.list_written",
        actor=actor or Actor.system("datasubjects.suppression"),
        object_type=SUPPRESSION_AUDIT_TYPE,
        object_id="list",
        payload={"for": purpose[:200], "keys": {p: len(k) for p, k in sorted(keys.items())}},
    )
    return path


def _write_on_commit(purpose: str) -> None:
    transaction.on_commit(lambda: suppression_list_write(purpose=purpose))


def request_suppress(*, request: DataSubjectRequest) -> list[Suppression]:
    """Put the person of an objection, restriction or erasure request on the
    suppression list, one entry per customer id (run by the worker: finding the ids
    may read the sources). Idempotent: a key already listed for this reason is left.
    For a consent withdrawal: find the ids and rewrite the list (no entry: the
    consent ledger is what suppresses).

    An objection, restriction or erasure refused or closed as a duplicate before the
    worker got to it (or between its retries) lists nobody: the request that asked
    for it no longer stands.

    Side effects: creates the entries; records `suppression.added` on the request
    (the number of keys and the reason); rewrites the list file after commit.
    ConnectorError when a source cannot be read (the task retries).
    """
    if request.kind == RequestKind.CONSENT_WITHDRAWAL:
        # The withdrawal is in the consent ledger under the address; the ids found
        # now let the list name the person by customer key.
        request_customers_resolve(request=request)
        suppression_list_write(purpose=f"request {request.audit_id}")
        return []
    reason = KIND_SUPPRESSIONS.get(request.kind)
    if reason is None:
        raise ValidationError({"kind": "Only objection, restriction and erasure suppress."})
    if DataSubjectRequest.objects.filter(pk=request.pk, state__in=DROPPED_STATES).exists():
        return []
    request_customers_resolve(request=request)
    with transaction.atomic():
        locked = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if locked.state in DROPPED_STATES:
            return []
        listed = set(
            Suppression.objects.filter(
                customer_key__in=locked.customer_keys, reason=reason, lifted_at__isnull=True
            ).values_list("customer_key", flat=True)
        )
        added = [
            Suppression.objects.create(
                customer_key=key, reason=reason, request=locked, request_ref=locked.audit_id
            )
            for key in locked.customer_keys
            if key not in listed
        ]
        if added:
            audit_record(
                action="suppression.added",
                actor=Actor.system("datasubjects.worker"),
                object_type=REQUEST_AUDIT_TYPE,
                object_id=locked.audit_id,
                payload={"reason": reason, "keys": len(added)},
            )
            _write_on_commit(f"request {locked.audit_id}")
    return added


def suppression_lift(*, suppression: Suppression, reason: str, user: User) -> Suppression:
    """Take an entry off the list (the restriction ended, the objection was withdrawn
    or overridden under Art. 21(1)), with the reason. Privacy officers only; an
    erasure's entry is never lifted.

    Side effects: sets `lifted_at` and `lift_reason`; records `suppression.lifted`;
    rewrites the list file after commit.
    """
    if not may_handle_requests(user):
        raise PermissionDenied("Only privacy officers lift a suppression.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the person may be profiled again."})
    with transaction.atomic():
        locked = Suppression.objects.select_for_update().get(pk=suppression.pk)
        if locked.lifted_at is not None:
            raise ValidationError({"reason": "This entry has been lifted already."})
        if locked.reason == SuppressionReason.ERASURE:
            # The person's data is gone; a customer who comes back does so under a new
            # account and id, so an erased id is never profiled again.
            raise ValidationError({"reason": "An erased person stays on the list."})
        locked.lifted_at = timezone.now()
        locked.lift_reason = reason.strip()
        locked.save(update_fields=["lifted_at", "lift_reason"])
        audit_record(
            action="suppression.lifted",
            actor=user.audit_actor(),
            object_type=REQUEST_AUDIT_TYPE,
            object_id=locked.request_ref,
            payload={"reason": locked.reason, "why": reason[:500], "entry": locked.pk},
        )
        _write_on_commit(f"lifted entry {locked.pk}")
    return locked
