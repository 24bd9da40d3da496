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

# How the audit ledger names a request (by its public id, never the person).
REQUEST_AUDIT_TYPE = "data_subject_request"

# Art. 12(3): one month, extendable by at most two further months.
MAX_EXTENSION_MONTHS = 2


class SourceKind(models.TextChoices):
    LAKE = "lake", "Data lake (Parquet snapshots)"
    SQL = "sql", "SQL database"
    PORTAL = "portal", "The portal's own records"
    BIGQUERY = "bigquery", "BigQuery"
    PREDICTION_LOG = "prediction_log", "The model server's prediction log"
    MANUAL = "manual", "Manual (a person records what was done)"


class LookupKey(models.TextChoices):
    EMAIL = "email", "E-mail address"
    CUSTOMER_ID = "customer_id", "Customer id"


class TaskAction(models.TextChoices):
    ACCESS = "access", "Find and export"
    ERASURE = "erasure", "Erase"


class TaskState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    AWAITING_PERSON = "awaiting_person", "Waiting for a person"


# Which kinds of request fan out into one task per data source, and with which action.
KIND_ACTIONS: dict[str, str] = {
    RequestKind.ACCESS: TaskAction.ACCESS,
    RequestKind.PORTABILITY: TaskAction.ACCESS,
    RequestKind.ERASURE: TaskAction.ERASURE,
}

# The kinds answered with an access package (Arts. 15 and 20): built once their last
# source task is done, and required before they complete.
PACKAGE_KINDS = frozenset(
    kind for kind, action in KIND_ACTIONS.items() if action == TaskAction.ACCESS
)


class ConsentPurpose(models.TextChoices):
    """What a customer consents to; the first two are profiling (the pipelines'
    suppression list names them `profiling` and `personalisation` too)."""

    PROFILING = "profiling", "Profiling for segmentation"
    PERSONALISATION = "personalisation", "Personalised recommendations"
    MARKETING = "marketing", "Marketing e-mails"


class ConsentSource(models.TextChoices):
    """Where a consent record came from."""

    SIGNUP = "signup", "Sign-up or account settings"
    WITHDRAWAL_REQUEST = "withdrawal_request", "Withdrawal form (privacy pages)"
    PRIVACY_OFFICER = "privacy_officer", "Recorded by a privacy officer"
    IMPORT = "import", "Imported from the CRM"


class SuppressionReason(models.TextChoices):
    """Why a person is on the suppression list."""

    OBJECTION = "objection", "Objection to profiling (Art. 21)"
    RESTRICTION = "restriction", "Restriction of processing (Art. 18)"
    ERASURE = "erasure", "Erasure (Art. 17)"


# Which request kinds put the person on the suppression list, and why.
KIND_SUPPRESSIONS: dict[str, str] = {
    RequestKind.OBJECTION: SuppressionReason.OBJECTION,
    RequestKind.RESTRICTION: SuppressionReason.RESTRICTION,
    RequestKind.ERASURE: SuppressionReason.ERASURE,
}

# How the audit ledger names the suppression list and the consent ledger.
SUPPRESSION_AUDIT_TYPE = "suppression_list"
CONSENT_AUDIT_TYPE = "consent_ledger"
