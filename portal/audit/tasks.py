import logging

from celery import shared_task
from django.db import transaction

from portal.audit.actors import Actor
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
