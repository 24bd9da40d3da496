from django.db import models
from django.utils import timezone

from portal.audit.choices import ActorType, ExportState

GENESIS_HASH = "0" * 64
# A redacted payload holds exactly this; the event that redacted it names it.
REDACTED_PAYLOAD = {"redacted": True}
REDACTION_ACTION = "audit.payloads_redacted"


class AuditEvent(models.Model):
    """One entry of the append-only, hash-chained ledger.

    `hash` is SHA-256 over a canonical encoding of the event's fields (including the
    digest of its payload) and `prev_hash`, so editing, inserting or removing any event
    breaks the chain from that point on. On PostgreSQL, triggers refuse UPDATE, DELETE
    and TRUNCATE on this table. Actors are pseudonymous ids, never names or e-mails.
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True, db_index=True)
    object_id = models.CharField(max_length=128, blank=True)
    payload_digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-sequence"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"

    @property
    def actor_display(self) -> str:
        return f"{self.actor_type}:{self.actor_id}" if self.actor_id else self.actor_type


class AuditPayload(models.Model):
    """The payload of an event, kept beside the chain.

    The chain covers only the payload's digest, so this row is the one part of the
    ledger that a GDPR redaction may overwrite: a redacted payload then reads as
    redacted, not as a broken chain. The client IP lives here because it is personal
    data.
    """

    event = models.OneToOneField(
        AuditEvent, primary_key=True, on_delete=models.PROTECT, related_name="payload_record"
    )
    data = models.JSONField(default=dict)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)
    redaction_reason = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"payload of #{self.event_id}"


class AuditChainHead(models.Model):
    """The last sequence and hash: the row appenders lock to serialise on one chain."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    sequence = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"head #{self.sequence}"


class AuditCheckpoint(models.Model):
    """A signed statement of the ledger's Merkle tree at one size (RFC 9162 style).

    `statement` is a compact JWS signed with the attestation keys (verifiable against
    /.well-known/jwks.json) whose claims are `origin`, `tree_size`, `root_hash`,
    `head_hash` and `iat`; the columns repeat them for queries. `frontier` holds the
    roots of the perfect subtrees of the tree (portal.audit.merkle.RootAccumulator), so
    the next checkpoint hashes only the events appended since. A checkpoint kept outside
    the database (exported, or in Cloud Logging) is what proves the newest events were
    not removed. On PostgreSQL, triggers refuse UPDATE, DELETE and TRUNCATE here too.
    """

    tree_size = models.PositiveBigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)
    head_hash = models.CharField(max_length=64)
    issued_at = models.DateTimeField()
    key_id = models.CharField(max_length=100)
    statement = models.TextField()
    frontier = models.JSONField(default=list)

    class Meta:
        ordering = ["-tree_size"]

    def __str__(self) -> str:
        return f"checkpoint at {self.tree_size} events"


class AuditExport(models.Model):
    """How far the ledger's copy in one outside log (Cloud Logging) has got: the
    export's outbox row.

    The ledger is append-only and its sequence has no gaps, so the events still owed
    are exactly those after `exported_sequence`; this one row per destination is the
    outbox. A send claims it (state `sending`, `attempts` counted, lease from
    `attempted_at`) for the batch up to `batch_end`, writes that batch holding no lock,
    then moves `exported_sequence` and `exported_hash` on (the hash lets the next batch
    check it continues the chain). A failed write leaves the cursor where it was and
    waits until `next_attempt_at` (backoff); `failures` counts failures in a row.
    """

    destination = models.CharField(max_length=32, unique=True)
    exported_sequence = models.PositiveBigIntegerField(default=0)
    exported_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    state = models.CharField(max_length=12, choices=ExportState.choices, default=ExportState.IDLE)
    batch_end = models.PositiveBigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    attempted_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_exported_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"{self.destination} export at #{self.exported_sequence}"
