"""The signed statement the gate gives CI when a version may deploy."""

from governance.reviews.selectors import GateAnswer
from portal.attestation import attestation_sign
from portal.changes.configuration import attestation_signing_key


def gate_attestation(*, answer: GateAnswer) -> str:
    """A compact JWS a deploy step verifies offline against /.well-known/jwks.json:
    model, version, image digest, target, approvers, review id; it expires with the
    approval. Only for an allowed answer. Signed with the first approved key
    (NoApprovedSigningKey when no configured key is approved yet)."""
    if not answer.allowed or answer.review is None or answer.expires_at is None:
        raise ValueError("only an allowed gate answer is attested")
    return attestation_sign(
        {
            "model": answer.model,
            "version": answer.version,
            "image_digest": answer.image_digest,
            "target": answer.target,
            "review": answer.review.pk,
            "approvers": [{"role": a["role"], "reviewer": a["reviewer"]} for a in answer.approvals],
        },
        expires_at=answer.expires_at,
        key=attestation_signing_key(),
    )
