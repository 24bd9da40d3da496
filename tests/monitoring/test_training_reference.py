"""A training run that registers a version stores its training reference with it, in
the registration's transaction, through training's `version_trained` announcement."""

import pytest

from monitoring.models import DriftReference
from portal.audit.models import AuditEvent
from tests.governance.training.conftest import (  # noqa: F401  # fixtures
    lake,
    pipelines_settings,
    train,
)


@pytest.mark.django_db
def test_training_run_stores_the_versions_reference(train):  # noqa: F811  # the fixture
    """The segmentation run's new version has one reference row per served feature and
    one for its segments, each a sample of the training data; the store is audited."""
    run = train("customer-segmentation", compare=False)
    assert run.version is not None
    stored = {r.feature: r for r in DriftReference.objects.filter(version=run.version)}
    assert set(stored) == {
        "recency_days",
        "frequency",
        "monetary",
        "visit_value",
        "unit_value",
        "promotion_share",
        "online_share",
        "weekend_share",
        "prediction",
    }
    assert all(row.count == len(row.values) > 0 for row in stored.values())
    event = AuditEvent.objects.get(action="monitoring.drift_reference_stored")
    assert event.object_id == run.version.audit_id
