"""The hooks through which the registry hears from the apps above it without importing
them: the review board listens for changed evidence, training offers its like-for-like
baseline. Both are registered in the apps' AppConfig.ready()."""

import pytest

from governance.models import ModelVersion
from governance.selectors.baselines import production_baseline
from governance.services.evidence import version_evidence_changed
from governance.training.models import PipelineRun
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def test_version_audit_id_is_the_slug_at_the_version():
    """How the ledger names a version, in one place: the model's property."""
    version = ModelVersionFactory(model__slug="demand-forecasting", version="2.1.0")
    assert version.audit_id == "demand-forecasting@2.1.0"
    assert ModelVersion.AUDIT_OBJECT_TYPE == "model_version"


def test_review_board_listens_for_changed_evidence():
    """ReviewsConfig.ready() connected the board's receiver to the registry's signal."""
    assert version_evidence_changed.has_listeners(ModelVersion)


def test_production_baseline_comes_from_the_training_run_that_rescored_it():
    """Training's provider answers with production's metrics on the version's own
    held-out data; a version no run rescored has no like-for-like baseline."""
    production = ModelVersionFactory(version="1.0.0", metrics={"mape": 0.2})
    version = ModelVersionFactory(model=production.model, version="1.1.0")
    assert production_baseline(version=version, production=production) is None
    run = PipelineRun.objects.create(
        model=version.model,
        trigger="manual",
        version=version,
        planned_version=version.version,
        comparison={
            "basis": "rescored",
            "production_version": production.version,
            "production": {"mape": 0.25},
        },
    )
    metrics, basis = production_baseline(version=version, production=production)
    assert metrics == {"mape": 0.25}
    assert f"by training run #{run.pk}" in basis
