"""The version page compares with production on the same data when a training run
rescored production there, and says which comparison it shows."""

import pytest
from django.urls import reverse

from governance.choices import Target
from governance.services.registry import target_assign
from governance.training.choices import RunState, RunTrigger
from governance.training.models import PipelineRun
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def _page(client_for, make_user, version) -> str:
    url = reverse("governance:version_detail", args=[version.model.slug, version.version])
    return client_for(make_user(Role.AUDITOR)).get(url).content.decode()


def test_version_page_uses_production_rescored_by_the_training_run(client_for, make_user):
    production = ModelVersionFactory(metrics={"mape": 0.30})
    target_assign(version=production, target=Target.PRODUCTION, actor=Actor.system("t"))
    newer = ModelVersionFactory(model=production.model, metrics={"mape": 0.40})
    run = PipelineRun.objects.create(
        model=production.model,
        trigger=RunTrigger.MANUAL,
        state=RunState.SUCCEEDED,
        planned_version=newer.version,
        version=newer,
        comparison={
            "basis": "rescored",
            "production_version": production.version,
            "production": {"mape": 0.55},
        },
    )
    html = _page(client_for, make_user, newer)
    assert f"rescored on this version&#x27;s held-out data by training run #{run.pk}" in html
    assert "55.00%" in html and "better" in html


def test_version_page_says_when_it_compares_recorded_metrics(client_for, make_user):
    production = ModelVersionFactory(metrics={"mape": 0.30})
    target_assign(version=production, target=Target.PRODUCTION, actor=Actor.system("t"))
    newer = ModelVersionFactory(model=production.model, metrics={"mape": 0.40})
    html = _page(client_for, make_user, newer)
    assert "recorded at its own registration" in html
    assert "30.00%" in html and "worse" in html
