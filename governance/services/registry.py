"""Writes to the model registry: version registration (idempotent, for CI), lifecycle
states, which version serves each target, and metric replacement."""

import hashlib
import json
import math
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.choices import LifecycleState, RiskTier, Target
from governance.clients import registry_sync_enabled
from governance.models import (
    MODEL_DESCRIPTION_MAX_CHARS,
    ModelVersion,
    RegisteredModel,
    TargetAssignment,
)
from governance.services.cards import (
    AUDIT_OBJECT_TYPE,
    card_create,
    card_performance_refresh,
)
from governance.services.evidence import evidence_changed
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.jsonvalues import json_stored_form, json_value_check

# semver.org's own pattern: MAJOR.MINOR.PATCH, optional pre-release and build metadata.
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z"
)
IMAGE_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
GIT_SHA_RE = re.compile(r"^[0-9a-f]{7,40}\Z")
METRIC_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.@-]{0,63}\Z")

REGISTRATION_FIELDS = (
    "version",
    "tag",
    "artifact_uri",
    "image_uri",
    "image_digest",
    "registry_resource_name",
    "data_version",
    "code_version",
    "pipeline_run_id",
    "hyperparameters",
    "metrics",
    "metric_slices",
)
REQUIRED_FIELDS = ("version", "artifact_uri", "image_digest", "data_version", "code_version")
TEXT_LIMITS = {
    "version": 64,
    "tag": 100,
    "artifact_uri": 500,
    "image_uri": 500,
    "image_digest": 100,
    "registry_resource_name": 300,
    "data_version": 200,
    "code_version": 64,
    "pipeline_run_id": 200,
}

# Which states a version may move to by hand (the review board, an operator). Moves
# onto a target go through target_assign, which sets canary/production itself.
STATE_MOVES: dict[str, set[str]] = {
    LifecycleState.REGISTERED: {
        LifecycleState.IN_REVIEW,
        LifecycleState.APPROVED,
        LifecycleState.DISCARDED,
    },
    LifecycleState.IN_REVIEW: {
        LifecycleState.REGISTERED,
        LifecycleState.APPROVED,
        LifecycleState.DISCARDED,
    },
    LifecycleState.APPROVED: {
        LifecycleState.IN_REVIEW,
        LifecycleState.RETIRED,
        LifecycleState.DISCARDED,
    },
    LifecycleState.CANARY: {LifecycleState.ROLLED_BACK, LifecycleState.RETIRED},
    LifecycleState.PRODUCTION: {LifecycleState.ROLLED_BACK, LifecycleState.RETIRED},
    LifecycleState.ROLLED_BACK: {
        LifecycleState.IN_REVIEW,
        LifecycleState.RETIRED,
        LifecycleState.DISCARDED,
    },
    LifecycleState.RETIRED: {LifecycleState.IN_REVIEW},
    LifecycleState.DISCARDED: set(),
}
# States that take a version off every target it serves.
OFF_TARGET_STATES = {LifecycleState.RETIRED, LifecycleState.ROLLED_BACK, LifecycleState.DISCARDED}
TARGET_STATE = {Target.CANARY: LifecycleState.CANARY, Target.PRODUCTION: LifecycleState.PRODUCTION}


class VersionConflict(Exception):
    """The version exists with a different registration body."""

    def __init__(self, *, version: ModelVersion, differing: dict[str, dict[str, Any]]) -> None:
        super().__init__(f"{version} is registered with different values")
        self.version = version
        self.differing = differing


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _metrics_clean(metrics: Any, field: str, errors: dict[str, str]) -> dict:
    """Metric values are numbers, or lists of numbers (cluster sizes, a distribution)."""
    if metrics in (None, ""):
        return {}
    if not isinstance(metrics, dict):
        errors[field] = "Must be an object of metric name to number."
        return {}
    for name, value in metrics.items():
        if not METRIC_NAME_RE.match(str(name)):
            errors[f"{field}.{name}"] = "Metric names are letters, digits, _ . @ -, up to 64."
        elif isinstance(value, list):
            if not value or not all(_is_number(v) for v in value):
                errors[f"{field}.{name}"] = "A list metric must hold numbers only."
        elif not _is_number(value):
            errors[f"{field}.{name}"] = f"Must be a number, not {json.dumps(value)[:40]}."
    return metrics


def _slices_clean(slices: Any, errors: dict[str, str]) -> dict:
    """{dimension: {slice value: {metric: number}}}, e.g. {"region": {"north": {...}}}."""
    if slices in (None, ""):
        return {}
    if not isinstance(slices, dict):
        errors["metric_slices"] = "Must be an object: dimension -> slice -> metrics."
        return {}
    for dimension, values in slices.items():
        if not isinstance(values, dict):
            errors[f"metric_slices.{dimension}"] = "Must be an object: slice -> metrics."
            continue
        for value, metrics in values.items():
            _metrics_clean(metrics, f"metric_slices.{dimension}.{value}", errors)
    return slices


def registration_clean(*, model: RegisteredModel, data: dict) -> dict:
    """Check a registration body and return it normalised (every field present).

    ValidationError names each field at fault: missing lineage, malformed semantic
    version, digest or git SHA, a non-numeric metric (`metrics.mape`).
    """
    errors: dict[str, str] = {}
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": "The body must be a JSON object."})
    json_value_check(data)
    for key in sorted(set(data) - set(REGISTRATION_FIELDS)):
        errors[key] = "Unknown field."
    body: dict[str, Any] = {}
    for field, limit in TEXT_LIMITS.items():
        value = data.get(field)
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors[field] = "Must be a string."
            value = ""
        value = value.strip()
        if len(value) > limit:
            errors[field] = f"At most {limit} characters."
        body[field] = value
    for field in REQUIRED_FIELDS:
        if not body[field] and field not in errors:
            errors[field] = "This field is required: lineage must be complete."
    if body["version"] and not SEMVER_RE.match(body["version"]):
        errors["version"] = "Must be a semantic version such as 2.1.0."
    if body["image_digest"] and not IMAGE_DIGEST_RE.match(body["image_digest"]):
        errors["image_digest"] = "Must be a container image digest: sha256: and 64 hex digits."
    if body["code_version"] and not GIT_SHA_RE.match(body["code_version"]):
        errors["code_version"] = "Must be a git commit SHA (7 to 40 lowercase hex digits)."
    if (
        "@sha256:" in body["image_uri"]
        and body["image_digest"]
        and body["image_uri"].rsplit("@", 1)[1] != body["image_digest"]
    ):
        errors["image_uri"] = "The digest in the image URI differs from image_digest."
    hyperparameters = data.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict):
        errors["hyperparameters"] = "Must be an object."
        hyperparameters = {}
    body["hyperparameters"] = hyperparameters
    body["metrics"] = _metrics_clean(data.get("metrics"), "metrics", errors)
    body["metric_slices"] = _slices_clean(data.get("metric_slices"), errors)
    if errors:
        raise ValidationError(errors)
    if not body["tag"]:
        body["tag"] = f"{model.kind}-v{body['version'].split('.')[0]}"
    # Digest and compare what the database will give back, not what was sent.
    return json_stored_form(body)


def _digest(body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _recorded_body(version: ModelVersion) -> dict:
    if version.registration_body:
        return version.registration_body
    # Created some other way (the Vertex AI sync): compare with what it holds now.
    return {field: getattr(version, field) for field in REGISTRATION_FIELDS}


def _differing(recorded: dict, body: dict) -> dict[str, dict[str, Any]]:
    recorded = json_stored_form(recorded)
    return {
        field: {"registered": recorded.get(field), "requested": body.get(field)}
        for field in REGISTRATION_FIELDS
        if recorded.get(field) != body.get(field)
    }


def model_update(
    *,
    model: RegisteredModel,
    owner: Any,
    risk_tier: str,
    description: str,
    actor: Actor,
    client_ip: str | None = None,
) -> RegisteredModel:
    """Change who owns a model, its risk tier and description.

    The owner must hold the model owner role; the description is at most
    MODEL_DESCRIPTION_MAX_CHARS characters (ValidationError naming the field). Side
    effects: audit `model.updated` with each changed field (the owner as a pseudonymous
    user id).
    """
    if owner is not None and not owner.has_role("model_owner"):
        raise ValidationError({"owner": "The owner must hold the model owner role."})
    if risk_tier not in RiskTier.values:
        raise ValidationError({"risk_tier": f"No risk tier {risk_tier!r}."})
    if len(description.strip()) > MODEL_DESCRIPTION_MAX_CHARS:
        raise ValidationError(
            {"description": f"At most {MODEL_DESCRIPTION_MAX_CHARS:,} characters."}
        )
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        new = {"owner_id": owner.pk if owner else None, "risk_tier": risk_tier}
        new["description"] = description.strip()
        changes = {
            name: {"from": getattr(model, name), "to": value}
            for name, value in new.items()
            if getattr(model, name) != value
        }
        if not changes:
            return model
        for name, value in new.items():
            setattr(model, name, value)
        model.save(update_fields=["owner", "risk_tier", "description"])
        audit_record(
            action="model.updated",
            actor=actor,
            object_type="model",
            object_id=model.slug,
            payload={
                name: change if name != "description" else {"changed": True}
                for name, change in changes.items()
            },
            client_ip=client_ip,
        )
    return model


def version_register(
    *, model_slug: str, data: dict, actor: Actor, client_ip: str | None = None
) -> tuple[ModelVersion, bool]:
    """Register a version from CI; return it and whether it was created now.

    Idempotent: the same body again returns the recorded version (created False);
    a different body for an existing version raises VersionConflict naming the fields.
    Side effects on creation: the version, its card (from the previous version's card),
    audit `version.registered` with the caller (the CI token) as actor.
    """
    model = RegisteredModel.objects.filter(slug=model_slug).first()
    if model is None:
        known = ", ".join(RegisteredModel.objects.values_list("slug", flat=True))
        raise ValidationError({"model": f"No model {model_slug!r}. Known models: {known}."})
    body = registration_clean(model=model, data=data)
    digest = _digest(body)
    major, minor, patch = (int(n) for n in SEMVER_RE.match(body["version"]).groups()[:3])  # type: ignore[union-attr]
    try:
        with transaction.atomic():
            # One registration per model at a time: the card of a new version is built
            # from the version below it, which a concurrent registration may be creating.
            RegisteredModel.objects.select_for_update().get(pk=model.pk)
            existing = ModelVersion.objects.filter(model=model, version=body["version"]).first()
            if existing is not None:
                differing = _differing(_recorded_body(existing), body)
                if differing:
                    raise VersionConflict(version=existing, differing=differing)
                return existing, False
            now = timezone.now()
            version = ModelVersion.objects.create(
                model=model,
                version_major=major,
                version_minor=minor,
                version_patch=patch,
                registration_digest=digest,
                registration_body=body,
                registered_by=actor.ref[:80],
                registered_at=now,
                metrics_updated_at=now,
                **{field: body[field] for field in REGISTRATION_FIELDS},
            )
            card_create(version=version, actor=actor)
            audit_record(
                action="version.registered",
                actor=actor,
                object_type=AUDIT_OBJECT_TYPE,
                object_id=version.audit_id,
                payload={
                    "model": model.slug,
                    "version": version.version,
                    "registration_digest": digest,
                    "data_version": version.data_version,
                    "code_version": version.code_version,
                    "image_digest": version.image_digest,
                    "metrics": sorted(version.metrics),
                },
                client_ip=client_ip,
            )
    except IntegrityError:
        # Lost a race on a database without row locks (SQLite): the other call won.
        existing = ModelVersion.objects.get(model=model, version=body["version"])
        differing = _differing(_recorded_body(existing), body)
        if differing:
            raise VersionConflict(version=existing, differing=differing) from None
        return existing, False
    return version, True


def version_set_state(
    *, version: ModelVersion, state: str, actor: Actor, client_ip: str | None = None
) -> ModelVersion:
    """Move a version along its lifecycle (see STATE_MOVES).

    Retiring, rolling back or discarding also takes it off every target it serves.
    Side effects: audit `version.state_changed`.
    """
    if state not in LifecycleState.values:
        raise ValidationError({"state": f"No lifecycle state {state!r}."})
    with transaction.atomic():
        version = (
            ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
        )
        old = version.state
        if state == old:
            return version
        if state not in STATE_MOVES[old]:
            raise ValidationError(
                {
                    "state": f"A version {LifecycleState(old).label.lower()} cannot become "
                    f"{LifecycleState(state).label.lower()}."
                }
            )
        version.state = state
        version.save(update_fields=["state"])
        cleared: list[str] = []
        if state in OFF_TARGET_STATES:
            assignments = TargetAssignment.objects.filter(version=version)
            cleared = sorted(assignments.values_list("target", flat=True))
            assignments.delete()
        audit_record(
            action="version.state_changed",
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=version.audit_id,
            payload={"from": old, "to": state, "targets_cleared": cleared},
            client_ip=client_ip,
        )
    return version


def target_assign(
    *,
    version: ModelVersion,
    target: str,
    actor: Actor,
    rollback: bool = False,
    client_ip: str | None = None,
) -> TargetAssignment:
    """Record that `version` now serves `target` of its model.

    The version becomes canary/production (staging leaves its state alone). The version
    it replaces becomes retired, or rolled back when `rollback` is set; a canary promoted
    to production leaves the canary slot empty. Discarded versions serve nothing.
    Side effects: audit `version.target_assigned`.
    """
    if target not in Target.values:
        raise ValidationError({"target": f"No target {target!r}."})
    with transaction.atomic():
        version = (
            ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
        )
        if version.state == LifecycleState.DISCARDED:
            raise ValidationError({"version": "A discarded version cannot serve a target."})
        current = (
            TargetAssignment.objects.select_for_update()
            .select_related("version")
            .filter(model_id=version.model_id, target=target)
            .first()
        )
        if current is not None and current.version_id == version.pk:
            return current
        replaced = current.version if current else None
        now = timezone.now()
        if current is None:
            assignment = TargetAssignment.objects.create(
                model_id=version.model_id, target=target, version=version, since=now
            )
        else:
            current.version, current.since = version, now
            current.save(update_fields=["version", "since"])
            assignment = current
        if target == Target.PRODUCTION:
            # The canary that graduates leaves the canary slot.
            TargetAssignment.objects.filter(
                model_id=version.model_id, target=Target.CANARY, version=version
            ).delete()
        if target in TARGET_STATE:
            version.state = TARGET_STATE[target]
            version.save(update_fields=["state"])
        replaced_state = ""
        if replaced is not None and target in TARGET_STATE:
            still_serving = TargetAssignment.objects.filter(version=replaced).exclude(
                target=Target.STAGING
            )
            if not still_serving.exists():
                replaced_state = LifecycleState.ROLLED_BACK if rollback else LifecycleState.RETIRED
                ModelVersion.objects.filter(pk=replaced.pk).update(state=replaced_state)
        if target in (Target.CANARY, Target.PRODUCTION) and version.registry_resource_name:
            _queue_alias_push(version_id=version.pk, target=target)
        audit_record(
            action="version.target_assigned",
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=version.audit_id,
            payload={
                "target": target,
                "replaced": replaced.version if replaced else None,
                "replaced_state": replaced_state or None,
                "rollback": rollback,
            },
            client_ip=client_ip,
        )
    return assignment


def _queue_alias_push(*, version_id: int, target: str) -> None:
    if registry_sync_enabled():
        from governance.tasks import set_registry_alias  # noqa: PLC0415 -- task

        transaction.on_commit(lambda: set_registry_alias.delay(version_id, target))


def version_metrics_replace(
    *,
    version: ModelVersion,
    metrics: dict,
    metric_slices: dict,
    actor: Actor,
    client_ip: str | None = None,
) -> ModelVersion:
    """Replace a version's evaluation metrics and slices (a re-run evaluation).

    Side effects: the card's performance section and a CardRevision, audit
    `version.metrics_replaced`, `evidence_changed` (approvals relied on the old numbers).
    """
    errors: dict[str, str] = {}
    json_value_check({"metrics": metrics, "metric_slices": metric_slices})
    metrics = json_stored_form(_metrics_clean(metrics, "metrics", errors))
    metric_slices = json_stored_form(_slices_clean(metric_slices, errors))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        version = (
            ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
        )
        before = version.metrics
        version.metrics, version.metric_slices = metrics, metric_slices
        version.metrics_updated_at = timezone.now()
        version.save(update_fields=["metrics", "metric_slices", "metrics_updated_at"])
        card_performance_refresh(version=version, actor=actor)
        audit_record(
            action="version.metrics_replaced",
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=version.audit_id,
            payload={"before": before, "after": metrics},
            client_ip=client_ip,
        )
        evidence_changed(version=version, reason="metrics replaced", actor=actor)
    return version
