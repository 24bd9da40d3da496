"""The one place registry and card writes announce that a version's evidence changed.

Card sections edited, metrics replaced, lineage corrected: anything a board member
may have relied on when deciding. The review board (governance.reviews) reacts here
by marking earlier decisions stale and sending open reviews back to waiting.
"""

from governance.models import ModelVersion
from portal.audit.actors import Actor


def evidence_changed(*, version: ModelVersion, reason: str, actor: Actor) -> None:
    """Call inside the transaction of the change. Side effects: see governance.reviews."""
    from governance.reviews.services import reviews_evidence_changed

    reviews_evidence_changed(version=version, reason=reason, actor=actor)
