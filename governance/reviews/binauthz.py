"""Binary Authorization attestations of the images the board approves for production.

When a production review is approved, `image_attestation_queue` writes an
`ImageAttestation` row in the deciding transaction (after the review's rows and the
chain head, like the Cloud Deploy outbox: a new row, nobody else holds it) and queues
`reviews.binauthz_attest` on commit. The task runs the portal's shared outbox steps
(`portal.outbox`): it claims the row in a short transaction (state `sending`, lease
ATTEST_LEASE_SECONDS), then, holding no lock, asks Container
Analysis whether the attestor already has an occurrence for the image (an earlier run
may have created it and died) and otherwise creates one, then records the result in a
second short transaction: the row's lock first, the chain head last (its audit event).

The payload is an in-toto Statement v1 naming the image by digest, with the board's
approval as predicate, signed with the portal's first attestation key (the key the
attestor must list as a PKIX key: P-256 or RSA, `publicKeyId` the key's `ni:///sha-256`
id). Without BINAUTHZ_ATTESTOR the signed statement is kept in the portal only.
"""

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from django.conf import settings
from django.db import transaction

from governance.choices import Target
from governance.reviews.choices import ReviewState, Verdict
from governance.reviews.models import ImageAttestation, ImageAttestationState, Review
from portal.attestation import SigningKey, signing_keys
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.outbox import Backoff, Outbox, lease_left, outbox_failure_record, outbox_send
from worker.backends.binauthz import AttestationUnavailable, ContainerAnalysisAttestor

WORKER = Actor.system("worker")
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://zeromargin.example/model-governance/production-approval/v1"
ATTEST_LEASE_SECONDS = 120
ATTEST_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class AttestResult:
    attestation_id: int
    state: str
    attempts: int
    retry: bool = False
    error: str = ""


ATTEST_BACKOFF = Backoff(base_seconds=30, max_seconds=1800)


def attest_backoff_seconds(attempts: int) -> int:
    """30 s, 60 s, 120 s ... capped at 30 minutes."""
    return ATTEST_BACKOFF.seconds(attempts)


def image_resource_uri(*, image_uri: str, image_digest: str) -> str:
    """`https://REGISTRY/PATH@sha256:...`, the form Binary Authorization checks."""
    repository = image_uri.removeprefix("https://").split("@", 1)[0]
    last = repository.rsplit("/", 1)
    if ":" in last[-1]:  # a tag, not a registry's port
        repository = repository.rsplit(":", 1)[0]
    return f"https://{repository}@{image_digest}"


def public_key_id(key: SigningKey) -> str:
    """The id Binary Authorization gives a PKIX key: `ni:///sha-256;` and the
    unpadded base64url SHA-256 of its DER SubjectPublicKeyInfo."""
    der = key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    return f"ni:///sha-256;{digest}"


def payload_sign(payload: bytes, key: SigningKey) -> bytes:
    """Sign as Binary Authorization verifies PKIX signatures: ECDSA P-256 with SHA-256
    (DER), RSA PKCS#1 v1.5 with SHA-256; Ed25519 (the development key) as is."""
    private_key = key.private_key
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    if not isinstance(private_key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"attestation key {key.kid} is neither P-256, RSA nor Ed25519")
    return private_key.sign(payload)


def statement_build(*, attestation: ImageAttestation, review: Review) -> bytes:
    """The in-toto statement: the image by digest, the board's production approval."""
    version = attestation.version
    approvals = review.decisions.filter(active=True, verdict=Verdict.APPROVE).order_by("pk")
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": attestation.resource_uri.removeprefix("https://").split("@", 1)[0],
                "digest": {"sha256": attestation.image_digest.removeprefix("sha256:")},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "portal": settings.PORTAL_BASE_URL,
            "model": version.model.slug,
            "version": version.version,
            "target": review.target,
            "review": review.pk,
            "approvals": [{"role": d.role, "reviewer": d.reviewer_ref} for d in approvals],
            "decided_at": review.decided_at.isoformat() if review.decided_at else None,
            "expires_at": review.expires_at.isoformat() if review.expires_at else None,
        },
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def _audit(row: ImageAttestation, action: str, actor: Actor, **extra: object) -> None:
    audit_record(
        action=action,
        actor=actor,
        object_type="review",
        object_id=row.review_id,
        payload={
            "attestation": row.pk,
            "image": row.resource_uri,
            "attestor": row.attestor,
            "state": row.state,
            "attempts": row.attempts,
            **extra,
        },
    )


def image_attestation_queue(*, review: Review, actor: Actor) -> ImageAttestation | None:
    """Owe the image an attestation once `review` approved it for production.

    Called inside the deciding transaction, after its audit event. Nothing when the
    review is not an approved production review, the version has no image by digest,
    or that image already has its row. Side effects: an `ImageAttestation` row, audit
    `review.binauthz_queued`, `reviews.binauthz_attest` queued on commit.
    """
    if review.state != ReviewState.APPROVED or review.target != Target.PRODUCTION:
        return None
    version = review.version
    if not version.image_uri or not version.image_digest.startswith("sha256:"):
        return None
    if ImageAttestation.objects.filter(version=version, image_digest=version.image_digest).exists():
        return None
    row = ImageAttestation.objects.create(
        version=version,
        review=review,
        image_digest=version.image_digest,
        resource_uri=image_resource_uri(
            image_uri=version.image_uri, image_digest=version.image_digest
        ),
        attestor=settings.BINAUTHZ_ATTESTOR,
    )
    _audit(row, "review.binauthz_queued", actor)
    attestation_id = row.pk

    from governance.reviews.tasks import binauthz_attest  # noqa: PLC0415 -- task

    transaction.on_commit(lambda: binauthz_attest.delay(attestation_id))
    return row


# What the send step found or did: ("local" | "found" | "created", occurrence name).
AttestOutcome = tuple[str, str]


class _AttestationOutbox(Outbox[ImageAttestation, AttestOutcome, AttestResult]):
    """Owed attestations on the shared claim -> lease -> send -> record steps."""

    model = ImageAttestation
    errors = (AttestationUnavailable, ValueError)

    def __init__(self, attestor: ContainerAnalysisAttestor | None) -> None:
        self.attestor = attestor

    def missing(self, pk: int) -> AttestResult:
        return AttestResult(attestation_id=pk, state="missing", attempts=0)

    def claim(self, row: ImageAttestation, now: datetime) -> AttestResult | None:
        """Take a pending row (or one whose run's lease ran out); the statement is
        built and signed once, on the first claim."""
        if row.state == ImageAttestationState.SENDING:
            lease = timedelta(seconds=ATTEST_LEASE_SECONDS)
            if lease_left(taken_at=row.attempted_at, lease=lease, now=now) is not None:
                return AttestResult(
                    attestation_id=row.pk, state=row.state, attempts=row.attempts, retry=True
                )
        elif row.state != ImageAttestationState.PENDING:
            return AttestResult(attestation_id=row.pk, state=row.state, attempts=row.attempts)
        if not row.payload:
            key = signing_keys()[0]
            payload = statement_build(attestation=row, review=Review.objects.get(pk=row.review_id))
            row.payload = payload.decode()
            row.public_key_id = public_key_id(key)
            row.signature = base64.b64encode(payload_sign(payload, key)).decode()
        row.state, row.attempts, row.attempted_at = (
            ImageAttestationState.SENDING,
            row.attempts + 1,
            now,
        )
        row.save()
        return None

    def send(self, row: ImageAttestation) -> AttestOutcome:
        """Find the attestor's occurrence for the image, or create it."""
        if not row.attestor:
            return "local", f"local:{row.pk}"
        attestor = self.attestor or attestor_client()
        existing = attestor.attestation_find(resource_uri=row.resource_uri)
        if existing is not None:
            return "found", existing.occurrence_name
        created = attestor.attestation_create(
            resource_uri=row.resource_uri,
            payload=row.payload.encode(),
            signature=base64.b64decode(row.signature),
            public_key_id=row.public_key_id,
        )
        return "created", created.occurrence_name

    def in_flight(self, row: ImageAttestation) -> bool:
        return row.state == ImageAttestationState.SENDING

    def taken_over(self, row: ImageAttestation) -> AttestResult:
        return AttestResult(attestation_id=row.pk, state=row.state, attempts=row.attempts)

    def record(
        self,
        row: ImageAttestation,
        *,
        outcome: AttestOutcome | None,
        error: Exception | None,
        now: datetime,
    ) -> AttestResult:
        if error is not None:
            retry = outbox_failure_record(
                row,
                error=error,
                now=now,
                max_attempts=ATTEST_MAX_ATTEMPTS,
                retry_state=ImageAttestationState.PENDING,
                failed_state=ImageAttestationState.FAILED,
                what="attestation",
            )
            if not retry:
                _audit(row, "review.binauthz_failed", WORKER, error=row.last_error)
            return AttestResult(
                attestation_id=row.pk,
                state=row.state,
                attempts=row.attempts,
                retry=retry,
                error=row.last_error,
            )
        # Narrows the type for the checker: without an error the send returned.
        assert outcome is not None  # nosec B101
        kind, occurrence = outcome
        row.state, row.occurrence, row.finished_at, row.last_error = (
            ImageAttestationState.CREATED,
            occurrence,
            now,
            "",
        )
        row.save()
        found = kind == "found"
        _audit(row, "review.binauthz_attested", WORKER, occurrence=occurrence, found=found)
        return AttestResult(attestation_id=row.pk, state=row.state, attempts=row.attempts)


def attestor_client() -> ContainerAnalysisAttestor:
    return ContainerAnalysisAttestor(
        attestor=settings.BINAUTHZ_ATTESTOR,
        api_endpoint=settings.CONTAINER_ANALYSIS_API_ENDPOINT or None,
        binauthz_api_endpoint=settings.BINAUTHZ_API_ENDPOINT or None,
    )


def image_attestation_send(
    *, attestation_id: int, attestor: ContainerAnalysisAttestor | None = None
) -> AttestResult:
    """Create one owed attestation in Container Analysis, at most once.

    The shared outbox steps (`portal.outbox`). Claim under the row's lock (nothing
    unless pending, or sending with its lease run out; the statement is built and signed
    once, on the first claim); then, holding no lock, find the attestor's occurrence for
    the image or create it; record under the row's lock, the chain head last. A
    retryable failure leaves the row pending and asks for a retry until
    ATTEST_MAX_ATTEMPTS, then the row is failed.
    Side effects: the row; the occurrence in Container Analysis; audit
    `review.binauthz_attested` or `review.binauthz_failed`.
    """
    return outbox_send(_AttestationOutbox(attestor), attestation_id)
