"""Choices of the data subjects app: request kinds and the request lifecycle."""

from django.db import models


class RequestKind(models.TextChoices):
    ACCESS = "access", "Access (Art. 15)"
    ERASURE = "erasure", "Erasure (Art. 17)"
    RECTIFICATION = "rectification", "Rectification (Art. 16)"
    RESTRICTION = "restriction", "Restriction of processing (Art. 18)"
    OBJECTION = "objection", "Objection to profiling (Art. 21)"
    PORTABILITY = "portability", "Data portability (Art. 20)"
    CONSENT_WITHDRAWAL = "consent_withdrawal", "Withdrawal of consent (Art. 7(3))"


class RequestState(models.TextChoices):
    """Close to Ethyca Fides' privacy request statuses."""

    IDENTITY_UNVERIFIED = "identity_unverified", "Identity unverified"
    PENDING = "pending", "Pending"
    IN_PROGRESS = "in_progress", "In progress"
    AWAITING_INPUT = "awaiting_input", "Awaiting input"
    COMPLETED = "completed", "Completed"
    REFUSED = "refused", "Refused"
    DUPLICATE = "duplicate", "Closed as duplicate"


# The clock of Art. 12(3) runs in these states; the privacy officer's queue shows them.
OPEN_STATES = frozenset(
    {RequestState.PENDING, RequestState.IN_PROGRESS, RequestState.AWAITING_INPUT}
)
CLOSED_STATES = frozenset({RequestState.COMPLETED, RequestState.REFUSED, RequestState.DUPLICATE})

# Which state may follow which; anything else is refused by the services.
STATE_MOVES: dict[str, frozenset[str]] = {
    RequestState.IDENTITY_UNVERIFIED: frozenset({RequestState.PENDING}),
    RequestState.PENDING: frozenset(
        {RequestState.IN_PROGRESS, RequestState.REFUSED, RequestState.DUPLICATE}
    ),
    RequestState.IN_PROGRESS: frozenset(
        {
            RequestState.AWAITING_INPUT,
            RequestState.COMPLETED,
            RequestState.REFUSED,
            RequestState.DUPLICATE,
        }
    ),
    RequestState.AWAITING_INPUT: frozenset(
        {RequestState.IN_PROGRESS, RequestState.REFUSED, RequestState.DUPLICATE}
    ),
    RequestState.COMPLETED: frozenset(),
    RequestState.REFUSED: frozenset(),
    RequestState.DUPLICATE: frozenset(),
}

# Art. 12(3): one month, extendable by at most two further months.
MAX_EXTENSION_MONTHS = 2
