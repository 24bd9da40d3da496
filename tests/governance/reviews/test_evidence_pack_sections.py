"""The version evidence pack's later sections: the gate's answers and the attestations
it handed out, rollouts (added by governance.rollouts) and the monitoring summary with
its quality record, drift chart and incidents (added by monitoring through the pack's hook), checked
in the PDF's extracted text."""

import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from defusedxml import ElementTree as ET
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pypdf import PdfReader

from governance.choices import Target
from governance.reviews.evidence import evidence_pack_sections, version_evidence_pack_pdf
from governance.reviews.gates import gate_attestation
from governance.reviews.selectors import gate_answer
from governance.reviews.services import review_decide
from governance.rollouts.models import Rollout, RolloutStep
from governance.services.registry import version_set_state
from monitoring.evidence import QUALITY_WINDOWS_LISTED, drift_chart_svg, monitoring_evidence
from monitoring.models import DriftResult, Incident, IncidentAction, MetricThreshold, QualityResult
from portal.accounts.choices import Role
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


def _text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages).replace("\n", " ")


def _pdf(version) -> str:
    return _text(version_evidence_pack_pdf(version=version, progress=lambda *a: None))


@pytest.fixture()
def served(ready_for_production, open_review, lead, privacy, devops):
    """A version approved for production, its gate attestation handed out, rolled out
    to production (two canary steps), with drift scores and incidents."""
    version = ready_for_production()
    review = open_review(version, Target.PRODUCTION)
    for reviewer, role in (
        (lead, Role.DATA_SCIENCE_LEAD),
        (privacy, Role.PRIVACY_OFFICER),
        (devops, Role.DEVOPS),
    ):
        review_decide(review=review, reviewer=reviewer, verdict="approve", role=role)
    answer = gate_answer(
        model_slug=version.model.slug, version=version.version, target=Target.PRODUCTION
    )
    assert answer.allowed, answer
    statement, _ = gate_attestation(answer=answer)
    finished = timezone.now() - timedelta(days=3)
    rollout = Rollout.objects.create(
        model=version.model,
        version=version,
        stable_version=ModelVersionFactory(model=version.model),
        target=Target.PRODUCTION,
        backend="local",
        strategy={"steps": [10, 100]},
        state="succeeded",
        weight=100,
        review_id=review.pk,
        attestation=statement,
        outcome="Promoted after two healthy steps.",
        requested_by="user:u-ops",
        finished_at=finished,
    )
    for index, weight in enumerate((10, 100)):
        RolloutStep.objects.create(
            rollout=rollout, index=index, weight=weight, started_at=finished, result="pass"
        )
    for day in range(3):
        end = datetime(2026, 11, 1 + day, tzinfo=UTC)
        DriftResult.objects.create(
            version=version, feature="price", method="psi", value=0.05 + 0.1 * day,
            threshold=0.2, verdict="drift" if day == 2 else "no_drift",
            reference_count=2000, current_count=1500,
            window_start=end - timedelta(hours=1), window_end=end,
        )  # fmt: skip
    during = Incident.objects.create(
        fingerprint="f1", title="Accuracy below threshold", severity="critical",
        status="resolved", model=version.model, started_at=finished + timedelta(hours=5),
        resolved_at=finished + timedelta(hours=7),
    )  # fmt: skip
    IncidentAction.objects.create(
        incident=during, fingerprint="f1", starts_at=during.started_at, kind="retrain",
        outcome="taken", reference="run-42",
    )  # fmt: skip
    Incident.objects.create(
        fingerprint="f2", title="Latency spike on the canary", model=version.model,
        labels={"version": version.version}, started_at=finished - timedelta(days=2),
    )  # fmt: skip
    Incident.objects.create(
        fingerprint="f3", title="Before it served", model=version.model,
        started_at=finished - timedelta(days=1),
    )  # fmt: skip
    return version, statement


def test_evidence_pack_sections_are_registered_by_rollouts_and_monitoring():
    """The pack (governance.reviews) knows neither app: each registered its section in
    ready(), and they print in order."""
    assert [s.anchor for s in evidence_pack_sections()][:2] == ["rollouts", "monitoring"]


def test_evidence_pack_prints_gate_answers_rollouts_monitoring_and_incidents(served):
    version, statement = served
    text = _pdf(version)
    compact = text.replace(" ", "")

    assert "Gate answers and attestations" in text
    assert hashlib.sha256(statement.encode()).hexdigest() in compact
    assert "Data science lead" in text and "Privacy officer" in text
    assert "Rollouts" in text and "Promoted after two healthy steps." in text
    assert "10 %" in text and "100 %" in text and "Pass" in text
    assert "Monitoring summary and incidents" in text
    assert "price" in text and "Population stability index" in text
    assert "price (psi)" in text  # the drift chart's legend, printed as vector text
    assert "Accuracy below threshold" in text  # started while it served
    assert "Retraining run: Taken (run-42)" in text
    assert "Latency spike on the canary" in text  # names the version
    assert "Before it served" not in text  # another version's time, names none


def test_evidence_pack_says_so_when_a_version_has_no_rollout_or_monitoring():
    text = _pdf(ModelVersionFactory())

    assert "This version was never rolled out." in text
    assert "No drift was computed for this version." in text
    assert "No prediction quality was computed for this version." in text
    assert "No incident concerned this version." in text
    assert "The gate has not answered for this version." in text


def test_monitoring_evidence_incidents_of_another_model_are_left_out(served):
    version, _ = served
    Incident.objects.create(
        fingerprint="other", title="Someone else's", model=ModelVersionFactory().model,
        labels={"version": version.version}, started_at=timezone.now(),
    )  # fmt: skip

    titles = [i.title for i in monitoring_evidence(version)["incidents"]]
    assert titles == ["Latency spike on the canary", "Accuracy below threshold"]


def test_drift_chart_svg_draws_one_line_per_series_and_the_threshold():
    days = [datetime(2026, 11, d, tzinfo=UTC) for d in (1, 2, 3)]
    svg = drift_chart_svg(
        {"price (psi)": list(zip(days, (0.1, 0.2, 0.4), strict=True)), "promo <b>": []},
        threshold=0.25,
    )

    root = ET.fromstring(svg)
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 1
    points = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    assert [x for x, _ in points] == sorted(x for x, _ in points)  # in time order
    assert points[0][1] > points[-1][1]  # a higher score is drawn higher up
    (threshold,) = root.findall(f"{SVG}line")
    assert threshold.get("stroke-dasharray")
    legend = [t.text for t in root.findall(f"{SVG}text")]
    assert "price (psi)" in legend and "promo <b>" in legend  # escaped, parsed back
    assert "2026-11-01" in legend and "2026-11-03" in legend


def test_drift_chart_svg_is_empty_without_values():
    assert drift_chart_svg({"price (psi)": []}, threshold=0.2) == ""


def _quality(version, metric, value, *, day, track="stable", samples=120):
    end = datetime(2026, 11, day, 12, tzinfo=UTC)
    return QualityResult.objects.create(
        version=version, track=track, metric=metric, value=value, sample_count=samples,
        window_start=end - timedelta(hours=1), window_end=end,
    )  # fmt: skip


@pytest.fixture()
def quality_record():
    """A forecasting version: four stable MAE windows (one with too few joined
    predictions), against the catalogue's MAE thresholds 400 / 500, and one canary
    MAPE window."""
    version = ModelVersionFactory()
    for day, value in ((1, 300.0), (2, 450.0), (3, 600.0), (4, None)):
        _quality(version, "mae", value, day=day, samples=120 if value else 12)
    _quality(version, "mape", 0.12, day=4, track="canary")
    return version


def test_monitoring_evidence_summarises_quality_per_track_and_metric(quality_record):
    """Windows with and without a figure, mean / min / max over the figures, the
    latest figure (not the later empty window) with its status, and how many windows
    were beyond each threshold in force."""
    rows = {
        (r["track"], r["metric"]): r for r in monitoring_evidence(quality_record)["quality_rows"]
    }

    assert list(rows) == [("canary", "mape"), ("stable", "mae")]
    mae = rows[("stable", "mae")]
    assert (mae["windows"], mae["figures"]) == (4, 3)
    assert (mae["mean"], mae["low"], mae["high"]) == (pytest.approx(450.0), 300.0, 600.0)
    assert mae["latest"] == 600.0 and mae["latest_end"] == datetime(2026, 11, 3, 12, tzinfo=UTC)
    assert mae["status"] == "critical"
    assert (mae["warning"], mae["critical"]) == (400, 500)
    assert (mae["warnings"], mae["criticals"]) == (2, 1)
    mape = rows[("canary", "mape")]
    assert (mape["latest"], mape["status"], mape["warnings"]) == (0.12, "ok", 0)


def test_monitoring_evidence_quality_counts_breaches_against_the_models_own_thresholds(
    quality_record,
):
    MetricThreshold.objects.create(
        model=quality_record.model, metric="mae", warning=250, critical=350
    )

    (mae,) = [
        r for r in monitoring_evidence(quality_record)["quality_rows"] if r["metric"] == "mae"
    ]
    assert (mae["warning"], mae["critical"], mae["warnings"], mae["criticals"]) == (250, 350, 3, 2)


def test_monitoring_evidence_quality_of_a_higher_is_better_metric_breaches_below():
    """Hit rate is better high: a window below the threshold is the one beyond it."""
    version = ModelVersionFactory(model__kind="recommendation")
    for day, value in ((1, 0.35), (2, 0.15), (3, 0.05)):
        _quality(version, "hit_rate_at_10", value, day=day)

    (row,) = monitoring_evidence(version)["quality_rows"]
    assert row["label"] == "Hit rate@10"
    assert (row["warnings"], row["criticals"], row["status"]) == (2, 1, "critical")


def test_monitoring_evidence_lists_the_latest_quality_windows_newest_first(quality_record):
    evidence = monitoring_evidence(quality_record)

    assert evidence["quality_metrics"] == ["MAE", "MAPE"]
    windows = [
        (w["track"], w["end"].day, w["samples"], w["values"]) for w in evidence["quality_windows"]
    ]
    assert windows == [
        ("canary", 4, 120, [None, 0.12]),
        ("stable", 4, 12, [None, None]),
        ("stable", 3, 120, [600.0, None]),
        ("stable", 2, 120, [450.0, None]),
        ("stable", 1, 120, [300.0, None]),
    ]
    assert evidence["quality_windows_total"] == 5


def test_monitoring_evidence_quality_table_is_capped_and_its_queries_do_not_grow():
    """A version that served for long has many windows: the table lists the latest
    QUALITY_WINDOWS_LISTED, says how many there are, and costs as many queries as a
    version with three."""

    def queries(windows: int) -> tuple[int, dict]:
        version = ModelVersionFactory()
        start = datetime(2026, 10, 1, tzinfo=UTC)
        QualityResult.objects.bulk_create(
            QualityResult(
                version=version,
                metric=metric,
                value=float(n),
                sample_count=100,
                window_start=start + timedelta(minutes=5 * n),
                window_end=start + timedelta(minutes=5 * n + 60),
            )
            for n in range(windows)
            for metric in ("mae", "rmse")
        )
        with CaptureQueriesContext(connection) as captured:
            evidence = monitoring_evidence(version)
        return len(captured), evidence

    small, _ = queries(3)
    large, evidence = queries(QUALITY_WINDOWS_LISTED + 12)
    assert small == large
    assert len(evidence["quality_windows"]) == QUALITY_WINDOWS_LISTED
    assert evidence["quality_windows_total"] == QUALITY_WINDOWS_LISTED + 12
    assert evidence["quality_windows"][0]["values"] == [float(QUALITY_WINDOWS_LISTED + 11)] * 2


def test_evidence_pack_prints_the_quality_summary_and_windows(quality_record):
    text = _pdf(quality_record)

    assert "Prediction quality" in text
    assert "450.0000 (300.0000 to 600.0000)" in text  # mean (min to max) of MAE
    assert "4 (3)" in text  # windows (with a figure)
    assert "600.0000 (critical)" in text
    assert "400.0000 / 500.0000" in text and "2 / 1" in text
    assert "Not enough data" not in text  # the latest figure, not the empty window
    assert "2026-11-04 11:00 to 2026-11-04 12:00" in text
    assert "0.1200" in text  # the canary's MAPE


def test_evidence_pack_gate_answer_is_the_gates_answer_now(approved_for, admin_user):
    """The pack prints the gate's current answer, as the gate gives it: an approval past
    its validity reads expired before the expiry task has run, and a discarded version
    reads refused, not the approved review state the stored row still holds."""
    version = ModelVersionFactory()
    review = approved_for(version, Target.STAGING)
    assert f"Approved (review {review.pk}," in _pdf(version)
    with time_machine.travel(review.expires_at + timedelta(minutes=1)):
        lapsed = _pdf(version)
    assert f"Expired (review {review.pk}," in lapsed
    assert f"Approved (review {review.pk}," not in lapsed
    version = version_set_state(version=version, state="discarded", actor=admin_user.audit_actor())
    discarded = _pdf(version)
    assert f"Refused: version discarded (review {review.pk}," in discarded
    assert f"Approved (review {review.pk}," not in discarded
