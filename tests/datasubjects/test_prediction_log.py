"""The model server's prediction log as a data source: access finds a person's lines
by customer id across models and days; erasure rewrites the files without them (the
other lines untouched), verifies, and changes nothing when run again."""

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from datasubjects.choices import LookupKey, RequestKind, SourceKind, TaskState
from datasubjects.connectors import ConnectorError, Identity, PredictionLogConnector
from datasubjects.models import SourceTask
from datasubjects.services import data_source_save, request_set_state, source_task_run
from portal.accounts.choices import Role
from serving.prediction_log import PredictionLog

pytestmark = pytest.mark.django_db

DAYS = (datetime(2026, 11, 27, 12, tzinfo=UTC), datetime(2026, 11, 28, 9, tzinfo=UTC))


def _write_log(root, person: str) -> None:
    """Lines written by the model server's own log writer: the person on two models
    and two days, someone else beside them, and a line with no customer."""
    log = PredictionLog(root, CollectorRegistry())
    log.start()
    n = 0
    for ts in DAYS:
        for model, customer in (
            ("customer-segmentation", person),
            ("customer-segmentation", "C0000002"),
            ("product-recommendation", person),
            ("demand-forecasting", None),
        ):
            n += 1
            log.append(
                ts=ts,
                request_id=f"{n:032x}",
                model=model,
                version="1.0.0",
                track="stable",
                key=customer,
                customer_id=customer,
                inputs={"customer_id": customer} if customer else {"store": "s1"},
                prediction={"segment": 2} if model == "customer-segmentation" else {"x": 1},
            )
    assert log.flush()
    log.stop()


@pytest.fixture()
def prediction_log(tmp_path, seeded_person, make_user):
    root = tmp_path / "predictions"
    _write_log(root, seeded_person["customer_id"])
    source = data_source_save(
        user=make_user(Role.PORTAL_ADMIN),
        slug="predictions",
        name="Prediction log",
        kind=SourceKind.PREDICTION_LOG,
        lookup_key=LookupKey.CUSTOMER_ID,
        config={"root": str(root)},
    )
    return root, source


def _lines(root) -> dict[str, list[str]]:
    return {
        f"{path.parent.name}/{path.name}": path.read_text().splitlines()
        for path in sorted(root.glob("*/*.jsonl"))
    }


def test_access_finds_the_persons_lines_in_every_model_and_day(
    registered_sources, prediction_log, seeded_person, verified_request, privacy_officer
):
    _root, _source = prediction_log
    dsr = verified_request(email=seeded_person["email"])
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    task = SourceTask.objects.get(request=dsr, source__slug="predictions")
    run = source_task_run(task_id=task.pk)
    assert run.task.state == TaskState.DONE, run.task.error
    assert run.task.rows_found == 4  # two models, two days
    assert "4 day file(s)" not in run.task.query and "6 day file(s)" in run.task.query
    import json

    from django.conf import settings

    evidence = json.loads((settings.DSAR_FILES_DIR / run.task.evidence_file).read_text())
    rows = evidence["tables"]["predictions"]
    assert {r["customer_id"] for r in rows} == {seeded_person["customer_id"]}
    assert sorted({r["model"] for r in rows}) == ["customer-segmentation", "product-recommendation"]


def test_erasure_rewrites_the_files_without_the_person(
    registered_sources, prediction_log, seeded_person, verified_request, privacy_officer
):
    """Their lines go, every other line stays as it was byte for byte, the
    verification finds nothing, and a second run changes nothing."""
    root, source = prediction_log
    before = _lines(root)
    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.ERASURE)
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    task = SourceTask.objects.get(request=dsr, source=source)
    run = source_task_run(task_id=task.pk)
    assert run.task.state == TaskState.DONE, run.task.error
    assert run.task.rows_changed == 4
    assert "-> 0 line(s)" in run.task.query
    after = _lines(root)
    person = f'"{seeded_person["customer_id"]}"'
    assert after == {
        name: [line for line in lines if person not in line] for name, lines in before.items()
    }
    assert sum(len(lines) for lines in after.values()) == 4  # someone else, no customer
    assert not list(root.glob("*/.*"))  # no staging file left behind
    again = PredictionLogConnector({"root": str(root)}).erase(
        Identity(email="x", subject_ref="x", customer_ids=(seeded_person["customer_id"],)), {}
    )
    assert (again.rows_changed, again.remaining) == (0, 0)
    assert _lines(root) == after


def test_erasure_after_a_crash_ignores_the_staging_file(tmp_path, seeded_person):
    """A worker killed after writing its staging copy leaves a hidden file: it is no
    day file, the retry erases from the real file and the log reads as before."""
    root = tmp_path / "predictions"
    _write_log(root, seeded_person["customer_id"])
    day = root / "customer-segmentation" / "2026-11-27.jsonl"
    (day.parent / f".{day.name}.deadbeef").write_text(day.read_text())
    connector = PredictionLogConnector({"root": str(root)})
    assert len(connector.files()) == 6
    identity = Identity(email="x", subject_ref="x", customer_ids=(seeded_person["customer_id"],))
    erased = connector.erase(identity, {})
    assert (erased.rows_changed, erased.remaining) == (4, 0)


def test_hold_keeps_the_lines_and_names_the_exemption(tmp_path, seeded_person):
    root = tmp_path / "predictions"
    _write_log(root, seeded_person["customer_id"])
    before = _lines(root)
    identity = Identity(email="x", subject_ref="x", customer_ids=(seeded_person["customer_id"],))
    held = PredictionLogConnector({"root": str(root)}).erase(
        identity, {"predictions": {"hold": "Art. 17(3)(e): legal claims"}}
    )
    assert (held.rows_held, held.rows_changed) == (4, 0)
    assert held.holds == {"predictions": "Art. 17(3)(e): legal claims"}
    assert _lines(root) == before


def test_models_config_must_be_slugs_and_check_reports_the_log(tmp_path, seeded_person):
    with pytest.raises(ConnectorError):
        PredictionLogConnector({"models": ["../etc"]})
    with pytest.raises(ConnectorError):
        PredictionLogConnector({"root": str(tmp_path / "none")}).check()
    _write_log(tmp_path, seeded_person["customer_id"])
    only = PredictionLogConnector({"root": str(tmp_path), "models": ["demand-forecasting"]})
    assert len(only.files()) == 2
    assert "3 model(s)" in PredictionLogConnector({"root": str(tmp_path)}).check()


@pytest.fixture()
def segmentation_v1(make_user):
    """customer-segmentation 1.0.0, its card describing segment 2 in a profile table."""
    from governance.services.cards import card_section_update
    from governance.services.registry import version_register
    from portal.audit.actors import Actor
    from tests.governance.conftest import registration_body

    version, _ = version_register(
        model_slug="customer-segmentation",
        data=registration_body("1.0.0", metric_slices=None),
        actor=Actor.system("tests"),
    )
    card_section_update(
        card=version.card,
        key="model_details",
        content="k-means on RFM features.\n\n| segment | customers | spend (GBP) |\n"
        "|---|---|---|\n| 1 | 40% | 80 |\n| 2 | 30% | 120 |",
        data=None,
        actor_user=make_user(Role.DATA_SCIENCE_LEAD),
    )
    return version


def _access_summary(dsr, officer, django_capture_on_commit_callbacks) -> str:
    import zipfile

    from django.conf import settings

    with django_capture_on_commit_callbacks(execute=True):
        request_set_state(request=dsr, state="in_progress", user=officer)
    dsr.refresh_from_db()
    with zipfile.ZipFile(settings.DSAR_FILES_DIR / dsr.package_file) as package:
        return package.read("summary.html").decode()


def test_access_package_says_the_current_segment_and_what_it_means(
    registered_sources,
    prediction_log,
    seeded_person,
    verified_request,
    privacy_officer,
    segmentation_v1,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    """Art. 15(1)(h): the summary names the segment production's version last gave the
    person, the row of the card's profile table for it, and what it is based on
    (their purchase rows in the lake)."""
    from worker.celery import app as celery_app

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    dsr = verified_request(email=seeded_person["email"])
    summary = _access_summary(dsr, privacy_officer, django_capture_on_commit_callbacks)
    section = summary[summary.index('data-testid="person-') :]
    assert "<strong>Segment 2</strong> (as of 2026-11-28T09:00:00" in section
    assert "<th>spend (GBP)</th><td>120</td>" in section
    import json

    from django.conf import settings

    lake = SourceTask.objects.get(request=dsr, source__slug="lake")
    tables = json.loads((settings.DSAR_FILES_DIR / lake.evidence_file).read_text())["tables"]
    assert f"the {len(tables['transactions'])} purchase record(s) of yours" in section


def test_access_package_says_an_objector_is_not_profiled(
    registered_sources,
    prediction_log,
    seeded_person,
    verified_request,
    privacy_officer,
    segmentation_v1,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from datasubjects.services import request_suppress
    from worker.celery import app as celery_app

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    objection = verified_request(email=seeded_person["email"], kind=RequestKind.OBJECTION)
    request_set_state(request=objection, state="in_progress", user=privacy_officer)
    request_suppress(request=objection)
    dsr = verified_request(email=seeded_person["email"])
    summary = _access_summary(dsr, privacy_officer, django_capture_on_commit_callbacks)
    section = summary[summary.index('data-testid="person-') :]
    assert "Not profiled" in section and "Segment 2" not in section


def test_erasure_carries_over_lines_the_server_appended_during_the_rewrite(
    tmp_path, seeded_person, monkeypatch
):
    """A batch the server appends to the old file just before the rename is not lost:
    it lands in the new file (and the person's lines in it do not)."""
    import json

    from datasubjects import connectors

    root = tmp_path / "predictions"
    _write_log(root, seeded_person["customer_id"])
    day = root / "customer-segmentation" / "2026-11-27.jsonl"
    late = [
        {"request_id": "late-other", "customer_id": "C0000003", "model": "m"},
        {"request_id": "late-person", "customer_id": seeded_person["customer_id"], "model": "m"},
    ]
    real_replace = connectors.os.replace

    def replace_after_a_late_batch(source, target):
        if str(target) == str(day):
            with day.open("a") as out:  # the server's writer, on the old file
                out.writelines(json.dumps(line) + "\n" for line in late)
        real_replace(source, target)

    monkeypatch.setattr(connectors.os, "replace", replace_after_a_late_batch)
    identity = Identity(email="x", subject_ref="x", customer_ids=(seeded_person["customer_id"],))
    erased = PredictionLogConnector({"root": str(root)}).erase(identity, {})
    ids = [json.loads(line)["request_id"] for line in day.read_text().splitlines()]
    assert "late-other" in ids and "late-person" not in ids
    assert erased.remaining == 0


def test_search_matches_whole_ids_only_with_several_ids(tmp_path):
    """The one-pattern byte search for several ids still matches whole JSON strings:
    C1 does not find C10's lines, and an id with regex characters is taken literally."""
    _write_log(tmp_path, "C1")
    folder = tmp_path / "customer-segmentation"
    with (folder / "2026-11-27.jsonl").open("a") as log:
        log.write('{"customer_id": "C10", "prediction": {}}\n')
        log.write('{"customer_id": "a.b", "prediction": {}}\n')
        log.write('{"customer_id": "axb", "prediction": {}}\n')
    connector = PredictionLogConnector({"root": str(tmp_path)})
    found = connector.find(
        Identity(email="x@example.com", subject_ref="r", customer_ids=("C1", "a.b"))
    )
    ids = sorted(row["customer_id"] for row in found.tables["predictions"])
    assert ids == ["C1", "C1", "C1", "C1", "a.b"]
    erasure = connector.erase(
        Identity(email="x@example.com", subject_ref="r", customer_ids=("a.b", "C1")), {}
    )
    assert (erasure.rows_changed, erasure.remaining) == (5, 0)
    left = (folder / "2026-11-27.jsonl").read_text()
    assert '"C10"' in left and '"axb"' in left and '"C0000002"' in left
