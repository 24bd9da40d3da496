"""The one place registry and card writes announce that a version's evidence changed.

Card sections edited, metrics replaced, lineage corrected: anything a board member
may have relied on when deciding. The registry does not know who listens: an app above
it (the review board, governance.reviews) connects a receiver to `version_evidence_changed`
in its AppConfig.ready(), and marks earlier decisions stale there.

Lock order: the registry's write holds the version row when it announces the change, and
the receivers lock their own rows after it (the version row first, the audit chain head
last), inside the same transaction, with no call to an outside system.
"""

from django.dispatch import Signal

from governance.models import ModelVersion
from portal.audit.actors import Actor

# Sent with keyword arguments version, reason and actor, inside the changing
# transaction. A receiver's exception propagates and rolls the change back.
version_evidence_changed = Signal()


def evidence_changed(*, version: ModelVersion, reason: str, actor: Actor) -> None:
    """Call inside the transaction of the change.

    Side effects: those of every receiver of `version_evidence_changed` (the review
    board: decisions stale, reviews back to waiting, audited).
    """
    version_evidence_changed.send(sender=ModelVersion, version=version, reason=reason, actor=actor)
