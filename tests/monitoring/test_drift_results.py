"""Drift results are stored per version, track and window as evidence, audited, and
recomputing a window replaces its scores instead of adding rows."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from monitoring.choices import DriftVerdict
from monitoring.models import DriftResult
from monitoring.services import drift_compute
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db
JOB = Actor.system("monitoring.drift")
START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(hours=1)


def _compute(version, current, **overrides):
    rng = np.random.default_rng(3)
    reference = {"price": rng.normal(10, 2, 2000), "units_last_week": rng.poisson(40, 2000)}
    kwargs = {"version": version, "track": "stable", "window_start": START, "window_end": END}
    kwargs.update(overrides)
    return drift_compute(reference=reference, current=current, actor=JOB, **kwargs)


def test_drift_compute_stores_every_feature_and_method(register):
    """A shifted price drifts, an unchanged feature does not, each by all four methods;
    the audit event names the drifted feature."""
    version = register("1.0.0")
    rng = np.random.default_rng(4)
    current = {"price": rng.normal(13, 2, 1500), "units_last_week": rng.poisson(40, 1500)}
    rows = _compute(version, current)
    assert len(rows) == 8
    verdicts = {(r.feature, r.method): r.verdict for r in DriftResult.objects.all()}
    assert {v for (f, _), v in verdicts.items() if f == "price"} == {DriftVerdict.DRIFT}
    assert verdicts[("units_last_week", "wasserstein")] == DriftVerdict.NO_DRIFT
    assert verdicts[("units_last_week", "psi")] == DriftVerdict.NO_DRIFT
    event = AuditEvent.objects.get(action="monitoring.drift_recorded")
    assert event.object_id == "demand-forecasting@1.0.0"
    assert event.payload_record.data["drifted"] == ["price"]


def test_drift_compute_same_window_again_replaces(register):
    """A retried job leaves one row per feature and method for the window."""
    version = register("1.0.0")
    rng = np.random.default_rng(5)
    current = {"price": rng.normal(10, 2, 1500), "units_last_week": rng.poisson(40, 1500)}
    _compute(version, current)
    _compute(version, current)
    assert DriftResult.objects.count() == 8


def test_drift_compute_missing_feature_is_not_enough_data(register):
    """A feature with no serving samples in the window gets no value and no verdict."""
    version = register("1.0.0")
    rng = np.random.default_rng(6)
    _compute(version, {"price": rng.normal(10, 2, 50)})
    assert set(DriftResult.objects.values_list("verdict", flat=True)) == {
        DriftVerdict.NOT_ENOUGH_DATA
    }
    assert not DriftResult.objects.exclude(value=None).exists()
    event = AuditEvent.objects.get(action="monitoring.drift_recorded")
    assert event.payload_record.data["not_enough_data"] == ["price", "units_last_week"]


def test_drift_compute_refuses_a_window_ending_before_it_starts(register):
    """An upside-down window is refused and nothing is recorded."""
    version = register("1.0.0")
    with pytest.raises(ValidationError):
        _compute(version, {}, window_end=START)
    assert not DriftResult.objects.exists()
    assert not AuditEvent.objects.filter(action="monitoring.drift_recorded").exists()
