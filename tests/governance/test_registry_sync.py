"""The Vertex AI Model Registry sync, through the real client library against the local
stand-in that answers in Vertex AI's REST format."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from governance.models import ModelVersion
from governance.services.registry import target_assign, version_register
from governance.services.registry_sync import registry_alias_push, registry_sync
from governance.tasks import set_registry_alias
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from tests.fakes.vertex_server import FakeVertexServer
from tests.fakes.vertex_server import vertex_server as vertex_server

pytestmark = pytest.mark.django_db
PROJECT, REGION = "zero-margin-ml", "europe-west1"
SYSTEM = Actor.system("test")
DIGEST = "sha256:" + "ab" * 32
SHA = "3f9a1c7e2b8d4f6a0c5e9b1d7f3a8c2e6b4d0f9a"


@pytest.fixture()
def vertex(vertex_server: FakeVertexServer, settings):
    settings.GOOGLE_CLOUD_PROJECT = PROJECT
    settings.GOOGLE_CLOUD_REGION = REGION
    settings.VERTEX_API_ENDPOINT = vertex_server.url
    return vertex_server


def _registry():
    from governance.clients import vertex_registry

    return vertex_registry()


def _remote(server: FakeVertexServer, model_id: str, slug: str, **kwargs: object) -> dict:
    return server.add_model_version(
        project=PROJECT,
        location=REGION,
        model_id=model_id,
        display_name=slug,
        labels={"portal-model": slug, **kwargs.pop("labels", {})},
        **kwargs,
    )


def _lineage_labels(semver: str) -> dict:
    return {"semver": semver, "data-version": "bq-snapshot-5d1e8a2c", "code-version": SHA}


def _register(version: str = "2.0.0") -> ModelVersion:
    body = {
        "version": version,
        "artifact_uri": f"gs://zm-models/demand-forecasting/{version}/model",
        "image_uri": "europe-west1-docker.pkg.dev/zm-ml/serving/demand-forecasting",
        "image_digest": DIGEST,
        "data_version": "bq-snapshot-5d1e8a2c",
        "code_version": SHA,
        "metrics": {"mae": 330.0, "mape": 0.11, "rmse": 450.0},
    }
    return version_register(model_slug="demand-forecasting", data=body, actor=SYSTEM)[0]


def test_sync_registers_a_version_only_vertex_knew(vertex):
    _remote(
        vertex,
        "1001",
        "demand-forecasting",
        labels=_lineage_labels("3-1-0"),
        artifact_uri="gs://zm-models/demand-forecasting/3.1.0/model",
        image_uri=f"europe-west1-docker.pkg.dev/zm-ml/serving/demand-forecasting@{DIGEST}",
        aliases=["default"],
    )
    report = registry_sync(registry=_registry(), actor=SYSTEM)
    assert (report.created, report.skipped) == (1, [])
    version = ModelVersion.objects.get(model__slug="demand-forecasting", version="3.1.0")
    assert version.registry_resource_name.endswith("/models/1001@1")
    assert version.registry_version_id == "1"
    assert version.registry_aliases == ["default"]
    assert (version.image_digest, version.code_version) == (DIGEST, SHA)
    assert hasattr(version, "card")
    assert AuditEvent.objects.filter(action="version.registered", actor_id="test").exists()
    linked = AuditEvent.objects.get(action="model.registry_linked")
    assert linked.payload_record.data["to"].endswith("/models/1001")
    assert vertex.requests_to("GET", r"/models$")
    assert vertex.requests_to("GET", r":listVersions$")


def test_sync_links_a_version_ci_registered_and_records_aliases(vertex):
    version = _register("2.0.0")
    _remote(vertex, "1001", "demand-forecasting", labels={"semver": "2-0-0"}, aliases=["canary"])
    report = registry_sync(registry=_registry(), actor=SYSTEM)
    assert (report.linked, report.created) == (1, 0)
    version.refresh_from_db()
    assert version.registry_aliases == ["canary", "default"]
    event = AuditEvent.objects.get(action="version.registry_synced")
    assert event.payload_record.data["how"] == "linked"


def test_sync_twice_changes_nothing_the_second_time(vertex):
    _register("2.0.0")
    _remote(vertex, "1001", "demand-forecasting", labels={"semver": "2-0-0"})
    registry_sync(registry=_registry(), actor=SYSTEM)
    report = registry_sync(registry=_registry(), actor=SYSTEM)
    assert (report.updated, report.unchanged) == (0, 1)
    assert AuditEvent.objects.filter(action="version.registry_synced").count() == 1


def test_sync_skips_what_it_cannot_place_and_says_why(vertex):
    _remote(vertex, "1001", "demand-forecasting", labels={})  # no semver label
    _remote(vertex, "1002", "demand-forecasting", labels={"semver": "4-0-0"})  # no lineage
    vertex.add_model_version(project=PROJECT, location=REGION, model_id="9", display_name="other")
    report = registry_sync(registry=_registry(), actor=SYSTEM)
    assert report.created == 0
    reasons = " | ".join(report.skipped)
    assert "no semver label" in reasons
    assert "cannot register (artifact_uri, code_version, data_version, image_digest)" in reasons
    assert "other: no portal model" in reasons
    assert not ModelVersion.objects.filter(version="4.0.0").exists()


def test_alias_push_sets_the_alias_in_vertex_once(vertex):
    version = _register("2.0.0")
    remote = _remote(vertex, "1001", "demand-forecasting", labels={"semver": "2-0-0"})
    registry_sync(registry=_registry(), actor=SYSTEM)
    version.refresh_from_db()
    assert registry_alias_push(
        version=version, target="production", registry=_registry(), actor=SYSTEM
    )
    calls = vertex.requests_to("POST", r":mergeVersionAliases$")
    assert len(calls) == 1 and calls[0].body == {"versionAliases": ["production"]}
    assert "production" in vertex.version(f"{remote['name']}@1")["versionAliases"]
    version.refresh_from_db()
    assert not registry_alias_push(
        version=version, target="production", registry=_registry(), actor=SYSTEM
    )
    assert len(vertex.requests_to("POST", r":mergeVersionAliases$")) == 1


def test_promotion_queues_the_alias_push(vertex, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from worker.celery import app

    app.conf.task_always_eager = True
    try:
        version = _register("2.0.0")
        _remote(vertex, "1001", "demand-forecasting", labels={"semver": "2-0-0"})
        registry_sync(registry=_registry(), actor=SYSTEM)
        version.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            target_assign(version=version, target="canary", actor=SYSTEM)
    finally:
        app.conf.task_always_eager = False
    assert vertex.requests_to("POST", r":mergeVersionAliases$")
    assert "canary" in ModelVersion.objects.get(pk=version.pk).registry_aliases


def test_alias_task_retries_while_vertex_is_away(vertex):
    from celery.exceptions import Retry

    version = _register("2.0.0")
    _remote(vertex, "1001", "demand-forecasting", labels={"semver": "2-0-0"})
    registry_sync(registry=_registry(), actor=SYSTEM)
    vertex.fail("POST", r":mergeVersionAliases$", status=503)
    with pytest.raises(Retry):
        set_registry_alias.apply(args=[version.pk, "production"], throw=True)


def test_registry_sync_command_reports(vertex):
    _remote(vertex, "1001", "demand-forecasting", labels={"semver": "2-0-0"})
    out = io.StringIO()
    call_command("registry_sync", stdout=out)
    assert "1 versions in Vertex AI" in out.getvalue()
    assert "skipped" in out.getvalue()


def test_registry_sync_command_refuses_without_a_project(settings):
    settings.GOOGLE_CLOUD_PROJECT = ""
    with pytest.raises(CommandError, match="registry sync is off"):
        call_command("registry_sync")


def test_model_list_says_when_sync_is_off(client_for, make_user, settings):
    settings.GOOGLE_CLOUD_PROJECT = ""
    html = (
        client_for(make_user(Role.AUDITOR)).get(reverse("governance:model_list")).content.decode()
    )
    assert "Vertex AI Model Registry sync is off" in html
