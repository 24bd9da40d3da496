import logging

from celery import shared_task
from django.db import transaction

from portal.audit.actors import Actor
from portal.audit.clients import cloud_logging_writer
from portal.audit.exporting import checkpoint_export_send, ledger_export_send
from portal.audit.services import audit_checkpoint_create, audit_record
from portal.audit.verification import audit_chain_verify

logger = logging.getLogger(__name__)


@shared_task(name="audit.verify_chain")
def verify_chain() -> bool:
    """Walk the chain and record the outcome as an `audit.chain_verified` event."""
    report = audit_chain_verify()
    if not report.ok:
        logger.error("audit chain verification failed: %s", report.summary())
    with transaction.atomic():
        audit_record(
            action="audit.chain_verified",
            actor=Actor.system("worker"),
            payload={
                "ok": report.ok,
                "checked": report.checked,
                "broken_sequence": report.broken_sequence,
                "reason": report.reason,
            },
        )
    return report.ok


@shared_task(name="audit.checkpoint")
def checkpoint() -> int | None:
    """Sign a checkpoint of the ledger if it grew; the tree size signed, or None."""
    created = audit_checkpoint_create()
    return created.tree_size if created else None


@shared_task(name="audit.export_ledger", acks_late=True)
def export_ledger() -> int:
    """Copy the events and then the signed checkpoints not yet in Cloud Logging there
    (nothing when the export is off). Beat runs it every minute; each cursor's lease and
    backoff make a second run at the same time, or one during an outage's backoff, do
    nothing. Returns the entries sent (events and checkpoints)."""
    writer = cloud_logging_writer()
    if writer is None:
        return 0
    results = [*ledger_export_send(writer=writer), *checkpoint_export_send(writer=writer)]
    return sum(result.count for result in results)
