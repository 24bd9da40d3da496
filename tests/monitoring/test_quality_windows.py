"""Quality and drift of served predictions per version and window: the maths against
known answers, the window job over real log files (join by request id, replace on
retry, unknown versions left alone), the training reference stored at registration,
and the figures on the portal's /metrics."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from governance.models import ModelVersion
from governance.training.signals import version_trained
from monitoring.choices import DriftVerdict
from monitoring.models import DriftReference, DriftResult, QualityResult
from monitoring.quality import (
    MIN_JOINED,
    forecasting_quality,
    recommendation_quality,
    segmentation_quality,
)
from monitoring.services import drift_reference_store, window_evaluate, window_latest
from monitoring.tasks import evaluate_windows
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent

JOB = Actor.system("tests")
START = datetime(2026, 11, 1, 10, tzinfo=UTC)
END = START + timedelta(hours=1)


def _forecast(units, actual, day="2026-11-02"):
    return {"forecast": [{"date": day, "units": units}]}, [{"date": day, "units": actual}]


def test_forecasting_quality_known_errors():
    """Errors of 2 and -2 units on days that sold 10 and 20: MAE 2, RMSE 2, MAPE 15%;
    a day that sold nothing counts in MAE but not in MAPE."""
    joined = [_forecast(12, 10), _forecast(18, 20)] * (MIN_JOINED // 2) + [_forecast(2, 0)]
    figures = forecasting_quality(joined)
    n = len(joined)
    assert figures["mae"] == pytest.approx((2 * (n - 1) + 2) / n)
    assert figures["rmse"] == pytest.approx(2.0)
    assert figures["mape"] == pytest.approx(0.15)


def test_quality_too_few_joined_is_not_enough_data():
    """Under MIN_JOINED joined predictions there is no figure at all, never a zero."""
    assert forecasting_quality([_forecast(1, 1)] * (MIN_JOINED - 1)) == {
        "mae": None,
        "mape": None,
        "rmse": None,
    }
    assert recommendation_quality([]) == {
        "hit_rate_at_10": None,
        "click_through_rate": None,
        "revenue_uplift": None,
    }
    assert segmentation_quality([{"x": 1.0}], [0]) == {"silhouette": None}


def test_recommendation_quality_hit_rate_ctr_and_uplift():
    """Half the requests bought a recommended item; one click per ten items shown; the
    model's items earned 10 per hit request where the most bought items earned 5 per
    request, out of 15 per request: uplift (10h - 15n) / 15n."""
    hit = (
        {"items": ["A", *[f"x{i}" for i in range(9)]]},
        {"clicked": ["A"], "purchased": ["A", "P"], "revenue": {"A": 10.0, "P": 5.0}},
    )
    miss = (
        {"items": [f"y{i}" for i in range(10)]},
        {"clicked": [], "purchased": ["B", "P"], "revenue": {"B": 10.0, "P": 5.0}},
    )
    joined = [hit, miss] * MIN_JOINED
    figures = recommendation_quality(joined)
    n = len(joined)
    assert figures["hit_rate_at_10"] == pytest.approx(0.5)
    assert figures["click_through_rate"] == pytest.approx((n / 2) / (10 * n))
    # The ten most bought items are P, A and B: all of each request's revenue.
    assert figures["revenue_uplift"] == pytest.approx((10 * n / 2 - 15 * n) / (15 * n))


def test_segmentation_quality_separated_segments_score_high():
    """Two well-separated groups labelled apart score a high silhouette; the same
    customers labelled at random score near zero."""
    rng = np.random.default_rng(0)
    base = {"promotion_share": 0.2, "online_share": 0.5, "weekend_share": 0.3}
    rows, labels = [], []
    for segment, spend in ((0, 50.0), (1, 5000.0)):
        for _ in range(60):
            value = spend * rng.uniform(0.9, 1.1)
            rows.append(
                {
                    "recency_days": 5.0,
                    "frequency": 10.0,
                    "monetary": value,
                    "visit_value": value / 10,
                    "unit_value": value / 30,
                    **base,
                }
            )
            labels.append(segment)
    assert segmentation_quality(rows, labels)["silhouette"] > 0.5
    shuffled = list(rng.permutation(labels))
    assert abs(segmentation_quality(rows, shuffled)["silhouette"]) < 0.2


# -- the window job over real files ---------------------------------------------------


def _write(root, model, lines):
    folder = root / model
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "2026-11-01.jsonl").open("a") as out:
        for line in lines:
            out.write(json.dumps(line) + "\n")


def _prediction(n, *, version="1.0.0", track="stable", level=10.0, minutes=5):
    ts = START + timedelta(minutes=minutes, seconds=n)
    return {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "request_id": f"{track}{version}{n:026d}"[:32],
        "model": "demand-forecasting",
        "version": version,
        "track": track,
        "key": "CAT01/",
        "customer_id": None,
        "inputs": {"category_id": "CAT01", "level_28": level, "discount": 0.1},
        "prediction": {"forecast": [{"date": "2026-11-02", "units": 12.0}]},
    }


@pytest.fixture()
def served(register, tmp_path):
    """Version 1.0.0 of demand forecasting with a training reference (level around 10,
    discount 0.1), 150 stable predictions distributed as the reference and 150 canary ones at
    three times the level, each with an outcome of 10 units; a line of a version the
    portal does not know, and a damaged line."""
    version = register("1.0.0")
    rng = np.random.default_rng(1)
    levels = rng.normal(10, 2, 1000)
    drift_reference_store(
        version=version,
        reference={
            "level_28": [float(v) for v in levels],
            "discount": [float(v) for v in rng.choice([0.0, 0.1, 0.2], 1000)],
        },
        actor=JOB,
    )
    canary = register("1.1.0")
    drift_reference_store(
        version=canary,
        reference={"level_28": [float(v) for v in rng.normal(10, 2, 1000)]},
        actor=JOB,
    )
    predictions, outcomes = tmp_path / "predictions", tmp_path / "outcomes"
    # The stable track serves the reference's own distribution (its quantiles): no
    # drift by construction, whatever the sampling noise of 150 draws would say.
    same = np.quantile(levels, (np.arange(150) + 0.5) / 150)
    lines = [_prediction(n, level=float(same[n])) for n in range(150)]
    lines += [
        _prediction(n, version="1.1.0", track="canary", level=float(rng.normal(30, 2)))
        for n in range(150)
    ]
    lines.append(_prediction(1, version="9.9.9"))
    lines.append(_prediction(2, minutes=90))  # after the window
    _write(predictions, "demand-forecasting", lines)
    with (predictions / "demand-forecasting" / "2026-11-01.jsonl").open("a") as out:
        out.write("{not json\n")
    _write(
        outcomes,
        "demand-forecasting",
        [
            {
                "ts": (END + timedelta(minutes=1)).isoformat(),
                "request_id": line["request_id"],
                "model": "demand-forecasting",
                "actual": [{"date": "2026-11-02", "units": 10.0}],
            }
            for line in lines
        ],
    )
    return version, canary, predictions, outcomes


def _evaluate(predictions, outcomes):
    return window_evaluate(
        start=START,
        end=END,
        actor=JOB,
        now=END + timedelta(hours=1),
        prediction_root=predictions,
        outcome_root=outcomes,
    )


@pytest.mark.django_db
def test_window_evaluate_stores_quality_and_drift_per_version_and_track(served):
    """Each version and track gets its MAE (forecasts of 12 against 10 sold: 2 units)
    from the joined outcomes; the canary's tripled level drifts and the stable one does
    not; the unknown version and the damaged line are reported, not stored."""
    version, canary, predictions, outcomes = served
    report = _evaluate(predictions, outcomes)
    assert sorted(report.evaluated) == [
        ("demand-forecasting", "1.0.0", "stable"),
        ("demand-forecasting", "1.1.0", "canary"),
    ]
    assert report.unknown_versions == [("demand-forecasting", "9.9.9")]
    assert report.skipped_lines == 1
    mae = QualityResult.objects.get(version=version, track="stable", metric="mae")
    assert (mae.value, mae.sample_count) == (pytest.approx(2.0), 150)
    assert QualityResult.objects.get(version=canary, metric="mape").value == pytest.approx(0.2)
    stable_level = DriftResult.objects.get(version=version, feature="level_28", method="kl")
    assert stable_level.verdict == DriftVerdict.NO_DRIFT, stable_level.value
    # 150 requests are too few for normed Wasserstein to say "no drift" (its noise at
    # this size reaches the threshold), but the canary's shift stands far above it.
    stable_distance = DriftResult.objects.get(
        version=version, feature="level_28", method="wasserstein"
    )
    assert stable_distance.verdict == DriftVerdict.NOT_ENOUGH_DATA
    canary_level = DriftResult.objects.get(
        version=canary, track="canary", feature="level_28", method="wasserstein"
    )
    assert canary_level.verdict == DriftVerdict.DRIFT
    assert canary_level.current_count == 150
    event = AuditEvent.objects.filter(action="monitoring.quality_recorded").first()
    assert event is not None and event.payload_record.data["samples"] in (150,)


@pytest.mark.django_db
def test_window_evaluate_same_window_again_replaces(served):
    """A retried job leaves one row per figure for the window."""
    _version, _canary, predictions, outcomes = served
    _evaluate(predictions, outcomes)
    counts = (QualityResult.objects.count(), DriftResult.objects.count())
    _evaluate(predictions, outcomes)
    assert (QualityResult.objects.count(), DriftResult.objects.count()) == counts
    assert counts == (6, 12)  # 3 metrics x 2 tracks; 2+1 features x 4 methods


@pytest.mark.django_db
def test_window_evaluate_without_outcomes_or_reference(register, tmp_path):
    """Predictions whose truth has not arrived give no quality figure (not enough
    data), and a version without a training reference gets no drift verdict."""
    register("1.0.0")
    predictions = tmp_path / "predictions"
    _write(predictions, "demand-forecasting", [_prediction(n) for n in range(50)])
    report = _evaluate(predictions, tmp_path / "outcomes")
    assert report.without_reference == [("demand-forecasting", "1.0.0")]
    assert set(QualityResult.objects.values_list("value", flat=True)) == {None}
    assert not DriftResult.objects.exists()


@pytest.mark.django_db
def test_evaluate_windows_task_with_no_log_folder_does_nothing(settings, tmp_path):
    """The scheduled task over a portal that serves nothing yet stores nothing."""
    settings.MONITORING_PREDICTION_LOG_DIR = tmp_path / "none"
    assert "0 evaluated" in evaluate_windows()
    assert not QualityResult.objects.exists()


def test_window_latest_rounds_to_the_step(settings):
    """Runs within one step evaluate the same window, ending on the step."""
    settings.MONITORING_WINDOW_MINUTES = 60
    settings.MONITORING_WINDOW_STEP_SECONDS = 300
    one = window_latest(now=datetime(2026, 11, 1, 10, 7, 12, tzinfo=UTC))
    two = window_latest(now=datetime(2026, 11, 1, 10, 9, 59, tzinfo=UTC))
    assert (
        one
        == two
        == (datetime(2026, 11, 1, 9, 5, tzinfo=UTC), datetime(2026, 11, 1, 10, 5, tzinfo=UTC))
    )


# -- the training reference ------------------------------------------------------------


@pytest.mark.django_db
def test_version_trained_stores_the_reference_once(register):
    """Training's announcement of a new version stores its reference, audited; a second
    announcement changes nothing (a version's reference never changes)."""
    version = register("1.0.0")
    reference = {"level_28": [1.0, 2.0, 3.0], "discount": [0.0, 0.1]}
    version_trained.send(sender=ModelVersion, version=version, serving_reference=reference)
    version_trained.send(
        sender=ModelVersion, version=version, serving_reference={"level_28": [9.0]}
    )
    stored = dict(DriftReference.objects.values_list("feature", "values"))
    assert stored == {"level_28": [1.0, 2.0, 3.0], "discount": [0.0, 0.1]}
    assert AuditEvent.objects.filter(action="monitoring.drift_reference_stored").count() == 1


@pytest.mark.django_db
def test_drift_reference_store_refuses_non_numbers(register):
    """A sample holding text or infinity is refused naming the feature; nothing stored."""
    version = register("1.0.0")
    with pytest.raises(ValidationError) as error:
        drift_reference_store(version=version, reference={"level_28": [1.0, "x"]}, actor=JOB)
    assert "level_28" in error.value.message_dict
    with pytest.raises(ValidationError):
        drift_reference_store(version=version, reference={"d": [float("inf")]}, actor=JOB)
    assert not DriftReference.objects.exists()


# -- /metrics --------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_serve_latest_quality_and_drift(served, client, settings):
    """After an evaluation, the portal's /metrics carries portal_model_quality and
    portal_model_drift labelled by model, version and track; not-enough-data windows
    carry no sample."""
    _version, _canary, predictions, outcomes = served
    settings.MONITORING_WINDOW_MINUTES = 10**6  # the fixed 2026 window counts as recent
    _evaluate(predictions, outcomes)
    text = client.get("/metrics").content.decode()
    assert (
        'portal_model_quality{metric="mae",model="demand-forecasting",track="stable",'
        'version="1.0.0"} 2.0'
    ) in text
    canary_drift = [
        line
        for line in text.splitlines()
        if line.startswith("portal_model_drift{")
        and 'track="canary"' in line
        and 'feature="level_28"' in line
        and 'method="wasserstein"' in line
    ]
    assert len(canary_drift) == 1 and float(canary_drift[0].rsplit(" ", 1)[1]) > 0.1
    assert "django_http_requests" in text  # django-prometheus's own metrics still there
