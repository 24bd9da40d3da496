"""`manage.py demo_monitoring`: a history of really evaluated windows for the served
production version, a drift episode whose alert opened one incident and one
retraining run at that time, the alert resolved, a Prometheus backfill; and a second
call that does nothing."""

import shutil
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from governance.choices import LifecycleState, Target
from governance.services.registry import target_assign, version_set_state
from governance.training.models import PipelineRun
from monitoring.models import DriftResult, Incident, QualityResult
from portal.audit.actors import Actor
from tests.governance.training.conftest import (  # noqa: F401  # fixtures
    lake,
    pipelines_settings,
    train,
)

DEMO = Actor.system("tests")


@pytest.mark.django_db
def test_demo_monitoring_builds_a_month_with_a_drift_episode(train, settings, tmp_path):  # noqa: F811
    settings.MONITORING_PREDICTION_LOG_DIR = tmp_path / "predictions"
    settings.MONITORING_OUTCOME_DIR = tmp_path / "outcomes"
    settings.VAR_DIR = tmp_path
    version = train("demand-forecasting", compare=False).version
    version_set_state(version=version, state=LifecycleState.APPROVED, actor=DEMO)
    target_assign(version=version, target=Target.PRODUCTION, actor=DEMO)

    out = StringIO()
    call_command(
        "demo_monitoring", "--days", "14", "--window-hours", "24", "--requests", "110", stdout=out
    )
    report = out.getvalue()
    assert "14 windows evaluated" in report, report
    # Every window of the served version has its MAE, from the joined outcomes.
    maes = QualityResult.objects.filter(version=version, metric="mae", value__isnull=False)
    assert maes.count() == 14
    # The drift shows in the episode's windows only, by the rule's KL measure.
    kl = DriftResult.objects.filter(version=version, feature="level_28", method="kl")
    now = timezone.now()
    episode = kl.filter(
        window_start__gte=now - timedelta(days=12, hours=1),
        window_start__lt=now - timedelta(days=9, hours=1),
    )
    assert episode.exists() and all(r.verdict == "drift" and r.value > 0.2 for r in episode)
    # Outside it the inputs follow the training data: ~110 requests a window are too
    # few for KL to say "no drift" for sure, but never enough noise to say "drift".
    calm = kl.filter(window_start__lt=now - timedelta(days=13))
    assert calm.exists()
    assert all(r.verdict in ("no_drift", "not_enough_data") for r in calm)
    assert all(r.value is None or r.value < 0.1 for r in calm)
    # One incident, opened when the alert fired back then, resolved after the episode.
    incident = Incident.objects.get()
    assert incident.status == "resolved"
    # It fires 15 minutes after the end of the episode's first day-long window, which
    # starts on the hour: up to 15 minutes past "11 days ago" in an hour's first quarter.
    fired_by = now - timedelta(days=11) + timedelta(minutes=15)
    assert now - timedelta(days=13) < incident.opened_at <= fired_by
    run = PipelineRun.objects.get(trigger="alert")
    assert run.state in ("succeeded", "discarded") and run.version is not None
    assert f"Incident #{incident.pk}" in run.reason
    assert abs(run.created_at - incident.opened_at) < timedelta(minutes=1)
    if shutil.which("promtool"):
        assert (tmp_path / "prometheus" / "backfill.om").read_text().endswith("# EOF\n")
        assert any((tmp_path / "prometheus" / "data").iterdir())

    again = StringIO()
    call_command("demo_monitoring", stdout=again)
    assert "nothing to do" in again.getvalue()
    assert Incident.objects.count() == 1
