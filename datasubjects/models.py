"""Data subject requests: who asked for what, when it is due, and what happened."""

import uuid

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.utils import timezone

from datasubjects.choices import (
    ConsentPurpose,
    ConsentSource,
    LookupKey,
    RequestKind,
    RequestState,
    SourceKind,
    SuppressionReason,
    TaskAction,
    TaskState,
)


def private_storage() -> FileSystemStorage:
    """Requests' files live outside MEDIA_ROOT: only permission-checked views serve them."""
    return FileSystemStorage(location=settings.DSAR_FILES_DIR)


class DataSubjectRequest(models.Model):
    """One request by (or for) a data subject under GDPR Arts. 15-21.

    The e-mail address is the only personal data kept here, and only while the request
    needs it; the audit trail names the request by `public_id` and the person by
    `subject_ref` (a keyed hash of the address), never by the address itself.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=32, choices=RequestKind.choices)
    state = models.CharField(
        max_length=32, choices=RequestState.choices, default=RequestState.IDENTITY_UNVERIFIED
    )
    email = models.EmailField(max_length=254)
    subject_ref = models.CharField(max_length=64, db_index=True)
    details = models.TextField(blank=True, max_length=4000)
    # A request made on someone's behalf (Art. 12, an authorised agent) names the agent
    # and carries the proof of the authority; the code goes to the agent's address.
    agent_name = models.CharField(max_length=200, blank=True)
    agent_email = models.EmailField(max_length=254, blank=True)
    agent_proof = models.FileField(
        upload_to="proofs/", storage=private_storage, blank=True, max_length=200
    )

    created_at = models.DateTimeField(auto_now_add=True)
    # Verification code: only its hash is kept; a new code resets the attempts.
    code_hash = models.CharField(max_length=64, blank=True)
    code_sent_at = models.DateTimeField(null=True, blank=True)
    code_attempts = models.PositiveSmallIntegerField(default=0)
    verified_at = models.DateTimeField(null=True, blank=True)

    received_on = models.DateField(null=True, blank=True)
    due_on = models.DateField(null=True, blank=True)
    extended_months = models.PositiveSmallIntegerField(default=0)
    extension_reason = models.TextField(blank=True, max_length=2000)
    extended_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    overdue_alerted_at = models.DateTimeField(null=True, blank=True)

    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="data_subject_requests",
    )
    refusal_reason = models.TextField(blank=True, max_length=2000)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    # The access package (JSON and CSV per source, an HTML summary), under DSAR_FILES_DIR.
    package_file = models.CharField(max_length=300, blank=True)
    package_built_at = models.DateTimeField(null=True, blank=True)
    # Lineage impact of an erasure: the model versions whose training snapshot held the
    # person ([{"model", "version", "snapshot", "rows"}]), found by the lake's task.
    lineage = models.JSONField(default=list, blank=True)
    # The customer ids the sources map the person to, found once and reused by every
    # later step: sealed (encrypted with a key derived from SECRET_KEY, see
    # datasubjects.pseudonyms) while the request needs them, cleared once an erasure
    # completes; their keyed hashes stay for the suppression list.
    customer_ids_sealed = models.TextField(blank=True)
    customer_keys = models.JSONField(default=list, blank=True)
    customers_found_at = models.DateTimeField(null=True, blank=True)
    # A consent withdrawal names the purposes withdrawn (ConsentPurpose values).
    consent_purposes = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("due_on", "created_at")
        indexes = [models.Index(fields=("state", "due_on"))]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(extended_months__lte=2),
                name="dsr_extension_at_most_two_months",
                violation_error_message="A deadline extends by at most two further months.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.public_id}"

    @property
    def audit_id(self) -> str:
        return str(self.public_id)

    @property
    def on_behalf(self) -> bool:
        return bool(self.agent_email)

    @property
    def code_recipient(self) -> str:
        return self.agent_email or self.email


class DataSource(models.Model):
    """A place where customers' personal data lives, and how to find a person in it.

    `config` is what the connector of its kind needs (see datasubjects.connectors):
    where the data is, which tables hold people and by which column. Portal admins
    register sources; every request fans out into one task per active source.
    """

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=SourceKind.choices)
    lookup_key = models.CharField(max_length=16, choices=LookupKey.choices)
    config = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class SourceTask(models.Model):
    """One request's work in one data source, with its evidence: the query used, the
    rows found and changed, and (for access) the file of what was found.

    Run by a Celery worker and safe to run again: a done task is left alone, and a
    retry overwrites the same evidence file.
    """

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="tasks")
    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="tasks")
    action = models.CharField(max_length=16, choices=TaskAction.choices)
    state = models.CharField(max_length=16, choices=TaskState.choices, default=TaskState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    rows_found = models.PositiveIntegerField(null=True, blank=True)
    rows_changed = models.PositiveIntegerField(null=True, blank=True)
    query = models.TextField(blank=True)
    evidence_file = models.CharField(max_length=300, blank=True)
    note = models.TextField(blank=True, max_length=4000)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("source__name",)
        constraints = [
            models.UniqueConstraint(
                fields=("request", "source", "action"),
                name="one_task_per_request_source_action",
                violation_error_message="This request already has a task for this source.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} in {self.source}"


class AppendOnly(models.Model):
    """A ledger row: written once, never changed or deleted through the ORM."""

    class Meta:
        abstract = True

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError(f"{type(self).__name__} is append-only: record a new entry")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError(f"{type(self).__name__} is append-only")


class ConsentRecord(AppendOnly):
    """One consent given or withdrawn, for one purpose, at one time (GDPR Art. 7(1):
    the controller must be able to show consent). Append-only: the person's current
    state per purpose is their newest record.

    The person is named pseudonymously: `subject_ref` (keyed hash of the e-mail
    address, as on requests) and, when known, `customer_key` (keyed hash of the
    customer id, as on the suppression list).
    """

    subject_ref = models.CharField(max_length=64, db_index=True)
    customer_key = models.CharField(max_length=64, blank=True, db_index=True)
    purpose = models.CharField(max_length=24, choices=ConsentPurpose.choices)
    given = models.BooleanField(help_text="True: consent given; False: withdrawn.")
    source = models.CharField(max_length=24, choices=ConsentSource.choices)
    notice_version = models.CharField(max_length=32)
    recorded_at = models.DateTimeField(default=timezone.now, db_index=True)
    request = models.ForeignKey(
        DataSubjectRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="consent_records",
    )
    recorded_by = models.CharField(max_length=200, blank=True)  # an actor label, not a name

    class Meta:
        ordering = ("-recorded_at", "-pk")
        indexes = [models.Index(fields=("subject_ref", "purpose", "recorded_at"))]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} {'given' if self.given else 'withdrawn'}"


class Suppression(models.Model):
    """A person the pipelines and the model server must leave out (Arts. 18, 21, 17):
    no segmentation or personalised recommendations, not in the next training snapshot.

    Keyed by `customer_key`, a keyed hash of the customer id only, so the entry
    outlives the erasure of everything else about the person. Reversible: lifting it
    sets `lifted_at` (the row stays, as the record that it applied).
    """

    customer_key = models.CharField(max_length=64, db_index=True)
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    # The request that asked for it, by its public id: kept when the request row goes.
    request_ref = models.CharField(max_length=36)
    request = models.ForeignKey(
        DataSubjectRequest,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="suppressions",
    )
    created_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lift_reason = models.TextField(blank=True, max_length=2000)

    class Meta:
        ordering = ("-created_at", "-pk")
        constraints = [
            models.UniqueConstraint(
                fields=("customer_key", "reason"),
                condition=models.Q(lifted_at__isnull=True),
                name="one_active_suppression_per_key_and_reason",
                violation_error_message="This person is on the suppression list already.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} ({self.request_ref})"


class VersionTrainedOnSubject(models.Model):
    """A model version whose training snapshot held a person whose erasure was
    requested: the lineage impact flagged on the version's page."""

    request = models.ForeignKey(
        DataSubjectRequest, on_delete=models.CASCADE, related_name="trained_versions"
    )
    version = models.ForeignKey(
        "governance.ModelVersion", on_delete=models.CASCADE, related_name="+"
    )
    snapshot = models.CharField(max_length=80)
    rows = models.PositiveIntegerField()
    found_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-found_at", "-pk")
        constraints = [
            models.UniqueConstraint(
                fields=("request", "version"),
                name="one_lineage_row_per_request_and_version",
                violation_error_message="This version is flagged for this request already.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} trained on {self.request}"
