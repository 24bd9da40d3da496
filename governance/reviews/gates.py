"""The signed statement the gate gives CI when a version may deploy.

Attestations are short-lived (ATTESTATION_TTL_MINUTES, never past the approval's own
expiry, which they carry as `approval_expires_at`), so one handed out before the
evidence changed stops verifying soon after. The last one signed for a gate's stored
answer is kept on its row (GateState) and handed out again until shortly before it
expires, or until the signing key changes (a rotation approved); a change of the
answer itself drops it (`gate_state_refresh`).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from governance.reviews.models import GateState
from governance.reviews.selectors import GateAnswer
from portal.attestation import attestation_sign
from portal.changes.configuration import attestation_signing_key, key_fingerprint


def _ttl() -> timedelta:
    return timedelta(minutes=settings.ATTESTATION_TTL_MINUTES)


def _reusable(cached_until: datetime | None, *, approval_expires_at: datetime) -> bool:
    """A cached attestation is handed out again while more than a fifth of its life is
    left, or when it already runs until the approval lapses (signing anew would not
    make it last longer); never when it runs past what ATTESTATION_TTL_MINUTES allows
    now (the setting was lowered since it was signed)."""
    if cached_until is None:
        return False
    now = timezone.now()
    ttl = _ttl()
    if cached_until <= now or cached_until > now + ttl:
        return False
    return cached_until - now > ttl / 5 or cached_until >= approval_expires_at


def gate_attestation(*, answer: GateAnswer) -> tuple[str, datetime]:
    """(compact JWS, its expiry): what a deploy step verifies offline against
    /.well-known/jwks.json: model, version, image digest, target, approvers, review id
    and `approval_expires_at`; it expires after ATTESTATION_TTL_MINUTES or with the
    approval, whichever is first. Only for an allowed answer. Signed with the first
    approved key (NoApprovedSigningKey when no configured key is approved yet).

    Side effects: for an answer read from the gate's row, a newly signed attestation is
    stored on that row, unless the row changed since it was read (its revision moved).
    """
    if not answer.allowed or answer.review_id is None or answer.expires_at is None:
        raise ValueError("only an allowed gate answer is attested")
    cache = answer.cache
    if cache is not None:
        key = attestation_signing_key(approved_value=cache.approved_keys)
    else:
        key = attestation_signing_key()
    key_ref = f"{key.kid}:{key_fingerprint(key)}"
    if (
        cache is not None
        and cache.attestation
        and cache.key == key_ref
        and _reusable(cache.expires_at, approval_expires_at=answer.expires_at)
    ):
        return cache.attestation, cache.expires_at  # type: ignore[return-value]
    expires_at = min(timezone.now() + _ttl(), answer.expires_at)
    token = attestation_sign(
        {
            "model": answer.model,
            "version": answer.version,
            "image_digest": answer.image_digest,
            "target": answer.target,
            "review": answer.review_id,
            "approvers": [{"role": a["role"], "reviewer": a["reviewer"]} for a in answer.approvals],
            "approval_expires_at": int(answer.expires_at.timestamp()),
        },
        expires_at=expires_at,
        key=key,
    )
    if cache is not None:
        # Conditional on the revision: a decision committed since the read dropped the
        # cache, and this attestation of the older answer must not come back.
        GateState.objects.filter(pk=cache.gate_state_id, revision=cache.revision).update(
            attestation=token, attestation_key=key_ref, attestation_expires_at=expires_at
        )
    return token, expires_at
