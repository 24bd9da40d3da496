"""Security settings read from the environment that a second admin must approve.

ATTESTATION_SIGNING_KEYS and PASSWORD_LOGIN_ENABLED come from the environment, which
one person with deploy rights can change. So the portal keeps the last approved value
of each (ApprovedConfiguration) and acts on that: the first value it ever sees is
recorded as the baseline (a new installation), a change that only tightens (password
sign-in switched off) is recorded and applies at once, and any other change (a signing
key added or removed, password sign-in switched back on) becomes a pending change
request, while the portal goes on with the approved value:

- signing and the published JWK set use only configured keys whose id and public-key
  fingerprint were approved (a new key is neither published nor used for signing
  until approved; a removed key is gone at once, since its private half is gone, but
  the approved set only changes on approval);
- password sign-in stays off until switching it on is approved.

The environment is compared on every use (one indexed read) and by the beat task, so
a changed value shows up as a pending request whether or not anything signs.
"""

import functools
import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.attestation import SigningKey, signing_keys
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.changes.choices import ChangeState
from portal.changes.models import ApprovedConfiguration, ChangeRequest
from portal.changes.registry import ChangeKind, change_kind_register
from portal.changes.services import change_propose, change_reject

SIGNING_KEYS = "attestation_signing_keys"
# A setting's name, not a secret.
PASSWORD_LOGIN = "password_login_enabled"  # noqa: S105  # nosec B105
KIND_PREFIX = "configuration."
ENVIRONMENT_ACTOR = Actor.system("environment")


class NoApprovedSigningKey(Exception):
    """No configured attestation key has been approved: the portal refuses to sign."""


@functools.lru_cache(maxsize=16)
def key_fingerprint(key: SigningKey) -> str:
    public = key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(public).hexdigest()


def _observed_keys() -> list[dict[str, str]]:
    return sorted(
        ({"kid": key.kid, "sha256": key_fingerprint(key)} for key in signing_keys()),
        key=lambda entry: entry["kid"],
    )


def _is_loosening(name: str, approved: Any, observed: Any) -> bool:
    if name == PASSWORD_LOGIN:
        return bool(observed) and not bool(approved)
    return approved != observed  # any key added or removed


def _describe(name: str, approved: Any, observed: Any) -> str:
    if name == PASSWORD_LOGIN:
        return "Switch password sign-in back on (PASSWORD_LOGIN_ENABLED=true)"
    before = {entry["kid"] for entry in approved}
    after = {entry["kid"] for entry in observed}
    parts = []
    if after - before:
        parts.append("add " + ", ".join(sorted(after - before)))
    if before - after:
        parts.append("remove " + ", ".join(sorted(before - after)))
    changed = sorted(e["kid"] for e in observed if e["kid"] in before and e not in approved)
    if changed:
        parts.append("replace " + ", ".join(changed))
    return "Attestation signing keys: " + "; ".join(parts or ["reorder"])


def configuration_observe(*, name: str, observed: Any) -> Any:
    """The approved value of setting `name`, given the value the environment has now.

    Side effects: the first observation is stored as the baseline (audit
    `configuration.baseline_recorded`); a tightening change is stored at once (audit
    `configuration.changed`); a loosening one becomes a pending change request (see
    `change_propose`) unless one for exactly this value already waits.
    """
    row = ApprovedConfiguration.objects.filter(name=name).first()
    if row is not None and row.value == observed:
        return observed
    with transaction.atomic():
        row = ApprovedConfiguration.objects.select_for_update().filter(name=name).first()
        if row is None:
            try:
                with transaction.atomic():
                    ApprovedConfiguration.objects.create(name=name, value=observed)
            except IntegrityError:
                return ApprovedConfiguration.objects.get(name=name).value
            audit_record(
                action="configuration.baseline_recorded",
                actor=ENVIRONMENT_ACTOR,
                object_type="configuration",
                object_id=name,
                payload={"value": observed},
            )
            return observed
        if row.value == observed:
            return observed
        if not _is_loosening(name, row.value, observed):
            before = row.value
            row.value, row.approved_at, row.change = observed, timezone.now(), None
            row.save(update_fields=["value", "approved_at", "change"])
            audit_record(
                action="configuration.changed",
                actor=ENVIRONMENT_ACTOR,
                object_type="configuration",
                object_id=name,
                payload={"before": before, "after": observed, "tightening": True},
            )
            return observed
        _propose(name=name, approved=row.value, observed=observed)
        return row.value


def _propose(*, name: str, approved: Any, observed: Any) -> None:
    kind = KIND_PREFIX + name
    waiting = ChangeRequest.objects.filter(kind=kind, subject_id=name, state=ChangeState.PENDING)
    for change in waiting:
        if change.after == {"value": observed} and change.expires_at > timezone.now():
            return
        # The environment moved on again: the older request no longer describes it.
        change_reject(
            change=change,
            rejected_by=None,
            actor=ENVIRONMENT_ACTOR,
            reason="Superseded: the environment now holds a different value.",
        )
    try:
        with transaction.atomic():
            change_propose(
                kind=kind,
                subject_type="configuration",
                subject_id=name,
                summary=_describe(name, approved, observed),
                before={"value": approved},
                after={"value": observed},
                proposed_by=None,
                actor=ENVIRONMENT_ACTOR,
                reason="The environment changed; the approved value stays in force until then.",
            )
    except ValidationError:
        pass  # another process proposed it at the same moment


def _apply(*, change: ChangeRequest, actor: Actor) -> None:
    name = change.subject_id
    row = ApprovedConfiguration.objects.select_for_update().get(name=name)
    if row.value != change.before["value"]:
        raise ValidationError({"change": "The approved value changed since this was proposed."})
    row.value, row.approved_at, row.change = change.after["value"], timezone.now(), change
    row.save(update_fields=["value", "approved_at", "change"])
    audit_record(
        action="configuration.changed",
        actor=actor,
        object_type="configuration",
        object_id=name,
        payload={
            "before": change.before["value"],
            "after": change.after["value"],
            "change": change.pk,
        },
    )


for _name, _label in (
    (SIGNING_KEYS, "Attestation signing keys"),
    (PASSWORD_LOGIN, "Password sign-in"),
):
    change_kind_register(ChangeKind(name=KIND_PREFIX + _name, label=_label, apply=_apply))


_UNREAD = object()


def attestation_keys_approved(*, approved_value: Any = _UNREAD) -> tuple[SigningKey, ...]:
    """The configured keys whose id and fingerprint are approved, signing key first.

    `approved_value`: the approved row's value when the caller already read it in its
    own query (the gate does); the row is only read and compared again here when the
    environment differs from it, so a changed environment still becomes a pending
    change on use.
    """
    observed = _observed_keys()
    if approved_value is not _UNREAD and approved_value == observed:
        approved = observed
    else:
        approved = configuration_observe(name=SIGNING_KEYS, observed=observed)
    allowed = {(entry["kid"], entry["sha256"]) for entry in approved}
    return tuple(key for key in signing_keys() if (key.kid, key_fingerprint(key)) in allowed)


def attestation_signing_key(*, approved_value: Any = _UNREAD) -> SigningKey:
    """The key that signs now: the first configured key that is approved
    (`approved_value` as for `attestation_keys_approved`)."""
    keys = attestation_keys_approved(approved_value=approved_value)
    if not keys:
        raise NoApprovedSigningKey(
            "No configured attestation key is approved yet: a second portal admin must "
            "approve the pending signing-key change."
        )
    return keys[0]


def password_login_allowed() -> bool:
    """PASSWORD_LOGIN_ENABLED, unless switching it back on still waits for approval."""
    return bool(
        configuration_observe(name=PASSWORD_LOGIN, observed=bool(settings.PASSWORD_LOGIN_ENABLED))
    )


def configuration_check() -> None:
    """Compare both settings with their approved values now (beat, and at start)."""
    attestation_keys_approved()
    password_login_allowed()
