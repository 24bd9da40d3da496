"""The deployment reconciler: what the cluster runs (the local stand-in of the
Kubernetes API, read through the official client) held against the board's approvals.
An image running without the approval for its target opens one incident (source
reconciler) per digest, audited; later runs leave it alone while it runs and resolve it
when it is gone; a cluster that cannot be read changes nothing."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from governance.choices import Target
from governance.reviews.choices import ReviewSource, ReviewState, Verdict
from governance.reviews.services import (
    review_decide,
    review_open,
    reviews_evidence_changed,
    reviews_expire,
)
from monitoring.choices import IncidentSource, IncidentStatus, Severity, TimelineKind
from monitoring.models import Incident
from monitoring.reconciler import deployments_reconcile
from monitoring.tasks import reconcile_deployments
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.fakes.kubernetes_server import FakeKubernetesServer
from worker.beat import BEAT_SCHEDULE

NAMESPACE = "ml-demand-forecasting"
IMAGE = "europe-west1-docker.pkg.dev/zm-mlops-prod/models/model-server"


@pytest.fixture()
def cluster(settings):
    fake = FakeKubernetesServer().start()
    fake.add_namespace(
        NAMESPACE,
        **{"model-governance/target": "production", "model-governance/model": "demand-forecasting"},
    )
    fake.add_namespace(
        f"{NAMESPACE}-canary",
        **{"model-governance/target": "canary", "model-governance/model": "demand-forecasting"},
    )
    settings.RECONCILER_KUBERNETES_API = fake.url
    yield fake
    fake.stop()


@pytest.fixture()
def model(db, make_user):
    return RegisteredModelFactory(slug="demand-forecasting", owner=make_user(Role.MODEL_OWNER))


@pytest.fixture()
def approve(make_user):
    """approve(version, target) -> the review, approved by one member per required role,
    after the targets before it (the production policy wants canary approved first)."""

    def one(version, target):
        review, _ = review_open(
            version=version,
            target=target,
            requested_by_actor=Actor.system("tests"),
            source=ReviewSource.CI,
        )
        for role in review.required_roles:
            review_decide(
                review=review, reviewer=make_user(role), verdict=Verdict.APPROVE, role=role
            )
        review.refresh_from_db()
        assert review.state == ReviewState.APPROVED, review.failed_checks
        return review

    def make(version, target):
        order = list(Target.values)
        for earlier in order[: order.index(target)]:
            one(version, earlier)
        return one(version, target)

    return make


def _run(cluster, namespace, version_or_digest, *pods):
    digest = getattr(version_or_digest, "image_digest", version_or_digest)
    for pod in pods:
        cluster.add_pod(namespace, pod, image=f"{IMAGE}:x", image_id=f"{IMAGE}@{digest}")


def _audited(action):
    return list(
        AuditEvent.objects.filter(action=action, actor_id="reconciler").values_list(
            "object_id", flat=True
        )
    )


def test_reconcile_flags_a_running_digest_the_board_did_not_approve(cluster, model):
    """Three pods of one unapproved digest: one incident, critical in production,
    owned by the model's owner, naming the digest and the pods, audited."""
    version = ModelVersionFactory(model=model)
    _run(cluster, NAMESPACE, version, "a", "b", "c")

    report = deployments_reconcile()

    incident = Incident.objects.get()
    assert report.opened == [incident.pk]
    assert incident.source == IncidentSource.RECONCILER
    assert incident.status == IncidentStatus.FIRING
    assert incident.severity == Severity.CRITICAL
    assert incident.model == model and incident.owner == model.owner
    assert incident.labels == {
        "alertname": "UnapprovedModelImage",
        "model": "demand-forecasting",
        "target": "production",
        "digest": version.image_digest,
    }
    assert incident.annotations["pods"] == [f"{NAMESPACE}/a", f"{NAMESPACE}/b", f"{NAMESPACE}/c"]
    assert version.image_digest in incident.summary
    assert list(incident.timeline.values_list("kind", flat=True)) == [TimelineKind.FIRED]
    event = AuditEvent.objects.get(action="incident.opened", object_id=str(incident.pk))
    assert event.actor_id == "reconciler"
    assert event.payload_record.data["digest"] == version.image_digest
    assert event.payload_record.data["target"] == "production"


def test_reconcile_leaves_an_image_approved_for_its_target_alone(cluster, model, approve):
    version = ModelVersionFactory(model=model)
    approve(version, Target.PRODUCTION)
    _run(cluster, NAMESPACE, version, "a")

    report = deployments_reconcile()

    assert report.images == 1 and report.findings == []
    assert not Incident.objects.exists()


def test_reconcile_flags_an_image_approved_only_for_another_target(cluster, model, approve):
    """Approved for canary is not approved for production; the canary namespace runs
    it legitimately."""
    version = ModelVersionFactory(model=model)
    approve(version, Target.CANARY)
    _run(cluster, f"{NAMESPACE}-canary", version, "canary-1")
    _run(cluster, NAMESPACE, version, "prod-1")

    report = deployments_reconcile()

    assert [(f.target, f.digest) for f in report.findings] == [("production", version.image_digest)]
    assert Incident.objects.get().labels["target"] == "production"


def test_reconcile_flags_the_same_digest_registered_for_another_model(cluster, model, approve):
    """An approval is for a model's version: another model's approved image running in
    this model's namespace is not covered by it."""
    other = ModelVersionFactory(model=RegisteredModelFactory(slug="customer-segmentation"))
    approve(other, Target.PRODUCTION)
    _run(cluster, NAMESPACE, other, "a")

    assert len(deployments_reconcile().findings) == 1


def test_reconcile_flags_an_image_without_a_digest_by_its_reference(cluster, model):
    cluster.add_pod(NAMESPACE, "tagged", image=f"{IMAGE}:latest", phase="Pending")

    deployments_reconcile()

    incident = Incident.objects.get()
    assert incident.labels["digest"] == ""
    assert incident.annotations["images"] == [f"{IMAGE}:latest"]
    assert "no digest" in incident.summary


def test_reconcile_is_idempotent_per_digest(cluster, model):
    """A second and third run over the same cluster open nothing, write no timeline
    entry and no audit event."""
    _run(cluster, NAMESPACE, ModelVersionFactory(model=model), "a", "b")
    deployments_reconcile()
    events = AuditEvent.objects.count()

    second = deployments_reconcile()
    deployments_reconcile()

    assert second.opened == second.refired == second.resolved == []
    assert len(second.findings) == 1
    assert Incident.objects.count() == 1
    assert Incident.objects.get().timeline.count() == 1
    assert AuditEvent.objects.count() == events


def test_reconcile_resolves_the_incident_when_the_digest_disappears_and_fires_it_again(
    cluster, model
):
    version = ModelVersionFactory(model=model)
    _run(cluster, NAMESPACE, version, "a")
    incident_id = deployments_reconcile().opened[0]

    cluster.remove_pod(NAMESPACE, "a")
    resolved = deployments_reconcile()
    again = deployments_reconcile()

    incident = Incident.objects.get(pk=incident_id)
    assert resolved.resolved == [incident_id] and again.resolved == []
    assert incident.status == IncidentStatus.RESOLVED and incident.resolved_at is not None
    assert _audited("incident.resolved") == [str(incident_id)]

    _run(cluster, NAMESPACE, version, "b")
    back = deployments_reconcile()

    incident.refresh_from_db()
    assert back.refired == [incident_id] and back.opened == []
    assert incident.status == IncidentStatus.FIRING and incident.resolved_at is None
    assert _audited("incident.fired_again") == [str(incident_id)]
    assert list(incident.timeline.values_list("kind", flat=True)) == [
        TimelineKind.FIRED,
        TimelineKind.RESOLVED,
        TimelineKind.FIRED,
    ]


def test_reconcile_resolves_the_incident_once_the_board_approves_the_running_image(
    cluster, model, approve
):
    version = ModelVersionFactory(model=model)
    _run(cluster, NAMESPACE, version, "a")
    incident_id = deployments_reconcile().opened[0]

    approve(version, Target.PRODUCTION)

    assert deployments_reconcile().resolved == [incident_id]


def test_reconcile_counts_a_lapsed_approval_but_not_one_sent_back_by_new_evidence(
    cluster, model, approve
):
    """The approval's validity is for deploying: what was deployed under it stays
    approved after it lapses. Evidence that changed after the approval sends the
    review back, and the running image is no longer approved."""
    lapsed = ModelVersionFactory(model=model)
    review = approve(lapsed, Target.PRODUCTION)
    with time_machine.travel(timezone.now() + timedelta(days=400)):
        reviews_expire()
    review.refresh_from_db()
    assert review.state == ReviewState.EXPIRED and review.approved_at is not None
    sent_back = ModelVersionFactory(model=model)
    approve(sent_back, Target.PRODUCTION)
    reviews_evidence_changed(version=sent_back, reason="card edited", actor=Actor.system("t"))
    _run(cluster, NAMESPACE, lapsed, "lapsed")
    _run(cluster, NAMESPACE, sent_back, "sent-back")

    report = deployments_reconcile()

    assert [finding.digest for finding in report.findings] == [sent_back.image_digest]


def test_reconcile_changes_nothing_when_the_cluster_cannot_be_read(cluster, model):
    """Half a picture would resolve incidents of images that still run: a refused list
    leaves every incident as it was."""
    _run(cluster, NAMESPACE, ModelVersionFactory(model=model), "a")
    deployments_reconcile()
    events = AuditEvent.objects.count()
    cluster.fail(r"/pods$", 403, "pods is forbidden", times=None)

    assert reconcile_deployments() == "cluster unavailable: the API server answered 403 Forbidden"
    assert Incident.objects.get().status == IncidentStatus.FIRING
    assert AuditEvent.objects.count() == events


def test_reconcile_leaves_an_incident_someone_closed_closed_and_opens_a_new_one(cluster, model):
    """Closing an incident while the image still runs does not make it approved."""
    from monitoring.incidents import incident_close

    _run(cluster, NAMESPACE, ModelVersionFactory(model=model), "a")
    first = Incident.objects.get(pk=deployments_reconcile().opened[0])
    incident_close(incident=first, note="looked at it", actor=Actor.system("tests"))

    second = deployments_reconcile()

    first.refresh_from_db()
    assert first.status == IncidentStatus.CLOSED
    assert len(second.opened) == 1 and second.opened != [first.pk]


def test_reconcile_task_is_on_the_beat_schedule_and_reports_counts(cluster, model):
    entry = BEAT_SCHEDULE["monitoring-reconcile-deployments"]
    assert entry["task"] == reconcile_deployments.name == "monitoring.reconcile_deployments"
    _run(cluster, NAMESPACE, ModelVersionFactory(model=model), "a")

    assert reconcile_deployments() == "1 images, 1 unapproved; 1 opened, 0 fired again, 0 resolved"


def test_reconcile_task_is_off_without_a_cluster(settings, db):
    settings.RECONCILER_KUBERNETES_API = ""

    assert reconcile_deployments().startswith("off")
    assert not Incident.objects.exists()


def test_reconcile_command_runs_once_and_exits_2_on_unapproved_images(cluster, model, capsys):
    version = ModelVersionFactory(model=model)
    _run(cluster, NAMESPACE, version, "a")

    with pytest.raises(CommandError) as refused:
        call_command("deployments_reconcile")

    assert refused.value.returncode == 2
    out = capsys.readouterr().out
    assert f"UNAPPROVED production demand-forecasting {version.image_digest}" in out
    assert "1 opened" in out
    assert Incident.objects.count() == 1


def test_reconcile_command_exits_0_when_everything_is_approved(cluster, model, approve, capsys):
    version = ModelVersionFactory(model=model)
    approve(version, Target.PRODUCTION)
    _run(cluster, NAMESPACE, version, "a")

    call_command("deployments_reconcile")

    assert "UNAPPROVED" not in capsys.readouterr().out


def test_reconcile_command_refuses_without_a_cluster(settings, db):
    settings.RECONCILER_KUBERNETES_API = ""

    with pytest.raises(CommandError, match="RECONCILER_KUBERNETES_API") as refused:
        call_command("deployments_reconcile")

    assert refused.value.returncode == 1
