"""Keeps the portal's versions and the Vertex AI Model Registry in step.

Vertex AI → portal: every model version in the configured project and region is
matched to a portal version (by resource name, else by its `semver` label) and its
resource name, version id and aliases recorded; a version the portal has never seen
is registered through the same service as CI's API, so it gets the same validation,
card and audit trail (lineage comes from its labels and container image).
Portal → Vertex AI: promoting a version to canary or production sets that alias on the
matching Vertex AI version (`registry_alias_push`).
"""

import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from governance.models import ModelVersion, RegisteredModel
from governance.services.cards import AUDIT_OBJECT_TYPE
from governance.services.registry import VersionConflict, version_register
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from worker.backends.vertex_registry import RegistryVersion, VertexModelRegistry

# Vertex AI label values allow only [a-z0-9_-]: 2.1.0 is labelled 2-1-0.
SEMVER_LABEL = re.compile(r"^(\d+)-(\d+)-(\d+)\Z")
ALIAS_TARGETS = ("canary", "production")


@dataclass
class SyncReport:
    models_seen: int = 0
    versions_seen: int = 0
    linked: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.models_seen} models, {self.versions_seen} versions in Vertex AI: "
            f"{self.created} registered, {self.linked} linked, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped"
        )


def _portal_model(remote_labels: dict[str, str], display_name: str) -> RegisteredModel | None:
    slug = remote_labels.get("portal-model") or display_name
    return RegisteredModel.objects.filter(slug=slug).first()


def _semver(remote: RegistryVersion) -> str | None:
    match = SEMVER_LABEL.match(remote.labels.get("semver", ""))
    return ".".join(match.groups()) if match else None


def _registration_body(remote: RegistryVersion, semver: str) -> dict:
    image_uri, _, digest = remote.container_image.partition("@")
    return {
        "version": semver,
        "tag": remote.labels.get("tag", ""),
        "artifact_uri": remote.artifact_uri,
        "image_uri": image_uri,
        "image_digest": digest,
        "data_version": remote.labels.get("data-version", ""),
        "code_version": remote.labels.get("code-version", ""),
        "pipeline_run_id": remote.labels.get("pipeline-run", ""),
    }


def _record_remote(
    *, version: ModelVersion, remote: RegistryVersion, actor: Actor, how: str
) -> bool:
    aliases = sorted(remote.aliases)
    changes = {
        name: new
        for name, new in (
            ("registry_resource_name", remote.resource_name),
            ("registry_version_id", remote.version_id),
            ("registry_aliases", aliases),
        )
        if getattr(version, name) != new
    }
    if not changes:
        return False
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(**changes)
        audit_record(
            action="version.registry_synced",
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=version.audit_id,
            payload={"how": how, **changes},
        )
    return True


def registry_sync(*, registry: VertexModelRegistry, actor: Actor) -> SyncReport:
    """Pull every model version from Vertex AI into the portal.

    Side effects: versions registered (audit `version.registered`), resource names and
    aliases recorded (audit `version.registry_synced`), the model's resource name set.
    Raises RegistryUnavailable when Vertex AI cannot be reached.
    """
    report = SyncReport()
    for remote_model in registry.list_models():
        report.models_seen += 1
        model = _portal_model(remote_model.labels, remote_model.display_name)
        versions = registry.list_versions(remote_model.resource_name)
        report.versions_seen += len(versions)
        if model is None:
            report.skipped.append(
                f"{remote_model.display_name}: no portal model (label portal-model=<slug>)"
            )
            continue
        if model.registry_resource_name != remote_model.resource_name:
            with transaction.atomic():
                RegisteredModel.objects.filter(pk=model.pk).update(
                    registry_resource_name=remote_model.resource_name
                )
                audit_record(
                    action="model.registry_linked",
                    actor=actor,
                    object_type="model",
                    object_id=model.slug,
                    payload={
                        "from": model.registry_resource_name,
                        "to": remote_model.resource_name,
                    },
                )
        for remote in versions:
            _sync_version(model=model, remote=remote, actor=actor, report=report)
    return report


def _sync_version(
    *, model: RegisteredModel, remote: RegistryVersion, actor: Actor, report: SyncReport
) -> None:
    version = ModelVersion.objects.filter(
        model=model, registry_resource_name=remote.resource_name
    ).first()
    if version is not None:
        changed = _record_remote(version=version, remote=remote, actor=actor, how="updated")
        report.updated += changed
        report.unchanged += not changed
        return
    semver = _semver(remote)
    if semver is None:
        report.skipped.append(f"{remote.resource_name}: no semver label (e.g. semver=2-1-0)")
        return
    version = ModelVersion.objects.filter(model=model, version=semver).first()
    how = "linked"
    if version is None:
        try:
            version, _created = version_register(
                model_slug=model.slug, data=_registration_body(remote, semver), actor=actor
            )
        except ValidationError as exc:
            fields = ", ".join(sorted(exc.message_dict))
            report.skipped.append(f"{remote.resource_name}: cannot register ({fields})")
            return
        except VersionConflict:
            report.skipped.append(f"{remote.resource_name}: conflicts with {model.slug}@{semver}")
            return
        how = "registered"
        report.created += 1
    else:
        report.linked += 1
    _record_remote(version=version, remote=remote, actor=actor, how=how)


def registry_alias_push(
    *, version: ModelVersion, target: str, registry: VertexModelRegistry, actor: Actor
) -> bool:
    """Set the target's alias (canary, production) on the version in Vertex AI.

    Idempotent: a version already holding the alias is left alone. Side effects: one
    mergeVersionAliases call, the aliases recorded, audit `version.registry_alias_set`.
    """
    if target not in ALIAS_TARGETS or not version.registry_resource_name:
        return False
    if target in version.registry_aliases:
        return False
    remote = registry.set_aliases(version.registry_resource_name, add=[target])
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(registry_aliases=sorted(remote.aliases))
        # Vertex AI moves an alias: the version that held it no longer does.
        for other in ModelVersion.objects.filter(model_id=version.model_id).exclude(pk=version.pk):
            if target in other.registry_aliases:
                other.registry_aliases = [a for a in other.registry_aliases if a != target]
                other.save(update_fields=["registry_aliases"])
        audit_record(
            action="version.registry_alias_set",
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=version.audit_id,
            payload={"alias": target, "aliases": sorted(remote.aliases)},
        )
    return True
