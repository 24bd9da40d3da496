"""The version evidence pack's later sections: the gate's answers and the attestations
it handed out, rollouts (added by governance.rollouts) and the monitoring summary with
its drift chart and incidents (added by monitoring through the pack's hook), checked
in the PDF's extracted text."""

import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest
from defusedxml import ElementTree as ET
from django.utils import timezone
from pypdf import PdfReader

from governance.choices import Target
from governance.reviews.evidence import evidence_pack_sections, version_evidence_pack_pdf
from governance.reviews.gates import gate_attestation
from governance.reviews.selectors import gate_answer
from governance.reviews.services import review_decide
from governance.rollouts.models import Rollout, RolloutStep
from monitoring.evidence import drift_chart_svg, monitoring_evidence
from monitoring.models import DriftResult, Incident, IncidentAction
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
