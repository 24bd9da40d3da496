"""`manage.py pipeline_run` (queued, or here with --wait) and `manage.py demo_training`
(trains each model, then retrains on a shifted snapshot; a second call does nothing)."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from governance.choices import LifecycleState, Target
from governance.models import ModelVersion, TargetAssignment
from governance.training.choices import RunState, RunTrigger
from governance.training.models import PipelineRun

pytestmark = pytest.mark.django_db


def test_pipeline_run_queues_a_run(pipelines_settings):
    out = StringIO()
    call_command("pipeline_run", "demand-forecasting", "--reason", "price change", stdout=out)
    run = PipelineRun.objects.get()
    assert run.state == RunState.QUEUED and run.trigger == RunTrigger.MANUAL
    assert run.reason == "price change" and run.requested_by == "system:cli"
    assert f"Run #{run.pk} of demand-forecasting queued" in out.getvalue()


def test_pipeline_run_wait_runs_here_and_prints_the_steps(pipelines_settings, lake):
    out = StringIO()
    call_command(
        "pipeline_run", "product-recommendation", "--wait", "--snapshot", lake.base.id, stdout=out
    )
    printed = out.getvalue()
    for step in ("[snapshot]", "[train]", "[register]", "[compare]"):
        assert step in printed
    assert "Succeeded" in printed
    assert PipelineRun.objects.get().state == RunState.SUCCEEDED


def test_pipeline_run_refuses_unknown_models_and_active_runs(pipelines_settings):
    with pytest.raises(CommandError, match="No model 'fraud'"):
        call_command("pipeline_run", "fraud", stdout=StringIO())
    call_command("pipeline_run", "demand-forecasting", stdout=StringIO())
    with pytest.raises(CommandError, match="already queued or running"):
        call_command("pipeline_run", "demand-forecasting", stdout=StringIO())


def test_demo_training_trains_retrains_and_is_cached(pipelines_settings, tmp_path):
    pipelines_settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    with pytest.raises(CommandError, match="demo_users"):  # its board approves production
        call_command("demo_training", "--transactions", "20000", stdout=StringIO())
    call_command("demo_users", stdout=StringIO())
    # The trained versions inherit the registry's cards, which the board checks.
    call_command("demo_registry", stdout=StringIO())
    call_command("demo_training", "--transactions", "20000", stdout=StringIO())

    runs = PipelineRun.objects.order_by("pk")
    assert runs.count() == 6
    assert {r.state for r in runs} <= {RunState.SUCCEEDED, RunState.DISCARDED}
    for slug in ("demand-forecasting", "customer-segmentation", "product-recommendation"):
        first, second = runs.filter(model__slug=slug)
        assert first.snapshot_id != second.snapshot_id  # sample data, then the shifted one
        production = TargetAssignment.objects.get(model__slug=slug, target=Target.PRODUCTION)
        assert production.version_id == first.version_id
        assert second.comparison["basis"] == "rescored"
        newer = ModelVersion.objects.get(pk=second.version_id)
        assert (newer.state == LifecycleState.DISCARDED) == (second.state == RunState.DISCARDED)

    out = StringIO()
    call_command("demo_training", "--transactions", "20000", stdout=out)
    assert PipelineRun.objects.count() == 6
    assert out.getvalue().count("already done") == 6


def test_demo_reviews_leaves_a_version_at_the_door_of_production(
    pipelines_settings, tmp_path, client
):
    """After the demo, forecasting's retrained version is approved for staging and
    canary: the visitor opens the production review; until then the gate says no."""
    from governance.reviews.models import Review
    from portal.apitokens.services import apitoken_create
    from portal.audit.actors import Actor

    pipelines_settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    for command in ("demo_users", "demo_registry"):
        call_command(command, stdout=StringIO())
    call_command("demo_training", "--transactions", "20000", stdout=StringIO())
    out = StringIO()
    call_command("demo_reviews", stdout=out)

    assert "approved for staging and canary" in out.getvalue()
    reviews = Review.objects.filter(version__model__slug="demand-forecasting")
    retrained = PipelineRun.objects.filter(model__slug="demand-forecasting").order_by("pk").last()
    version = retrained.version
    assert reviews.filter(version=version, target=Target.CANARY, state="approved").exists()
    assert reviews.filter(version=version, target=Target.STAGING, state="approved").exists()
    assert not reviews.filter(version=version, target=Target.PRODUCTION).exists()
    # The fairness evidence is the run's measurement across categories: the card's rows
    # and the check's verdict both come from the slices the pipeline stored.
    version.refresh_from_db()
    fairness = version.card.sections.get(key="fairness_assessment")
    (row,) = fairness.data["assessments"]
    assert row["metric"] == "MAPE per category"
    assert set(version.metric_slices["category"]) <= set(row["groups"].split(": ")[1].split(", "))
    canary = reviews.get(version=version, target=Target.CANARY)
    (check,) = [c for c in canary.checks if c["key"] == "fairness_present"]
    assert check["passed"] and check["detail"].startswith("Measured: MAPE by category: from ")
    assert "evaluates no region" in fairness.content
    owner = version.model.owner
    token = apitoken_create(
        name="ci", owner=owner, scopes=["gates:read"], expires_at=None, actor=Actor.system("t")
    )
    gate = client.get(
        f"/api/v1/gates/demand-forecasting/{version.version}/production",
        HTTP_AUTHORIZATION=f"Bearer {token.secret}",
    )
    assert gate.status_code == 403 and gate.json()["state"] == "no_review"
    call_command("demo_reviews", stdout=StringIO())  # a second call changes nothing
    assert Review.objects.filter(version=version).count() == 2
