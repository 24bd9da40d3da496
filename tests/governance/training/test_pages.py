"""Training run pages: the list (filters, query count), starting a run (who may, the
refusal while one is active), the run page with its live progress, the model page's
link, and the schedules page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from governance.models import RegisteredModel
from governance.training.choices import RunState, RunTrigger
from governance.training.models import PipelineRun
from governance.training.services import run_start
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from tests.governance.training.conftest import TESTER

pytestmark = pytest.mark.django_db

LIST = reverse("governance:run_list")
START = reverse("governance:run_start")


def _start(slug: str = "demand-forecasting", **kwargs) -> PipelineRun:
    return run_start(
        model=RegisteredModel.objects.get(slug=slug),
        trigger=kwargs.pop("trigger", RunTrigger.MANUAL),
        reason=kwargs.pop("reason", "test"),
        actor=TESTER,
        **kwargs,
    )


def _finished(count: int) -> None:
    slugs = list(RegisteredModel.objects.values_list("slug", flat=True))
    for n in range(count):
        run = _start(slugs[n % 3])
        PipelineRun.objects.filter(pk=run.pk).update(state=RunState.FAILED, outcome="x")


def test_run_list_shows_runs_and_filters(client_for, auditor, pipelines_settings):
    _finished(2)
    active = _start("customer-segmentation", trigger=RunTrigger.API)
    page = client_for(auditor).get(LIST, {"model": "customer-segmentation", "state": "queued"})
    body = page.content.decode()
    assert page.status_code == 200
    assert f"#{active.pk}" in body and "API" in body
    assert body.count('data-testid="run-row"') == 1
    assert 'data-testid="start-run"' not in body  # an auditor cannot start runs


def test_run_list_query_count_does_not_grow_with_rows(client_for, auditor, pipelines_settings):
    client = client_for(auditor)
    _finished(2)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    _finished(12)
    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST)
    assert response.content.decode().count('data-testid="run-row"') == 14
    assert len(many) == len(few)


def test_run_list_refuses_people_without_a_role(client_for, outsider):
    assert client_for(outsider).get(LIST).status_code == 403


def test_data_science_lead_starts_a_run_from_the_page(client_for, make_user, pipelines_settings):
    lead = make_user(Role.DATA_SCIENCE_LEAD)
    client = client_for(lead)
    assert 'data-testid="start-run"' in client.get(LIST).content.decode()
    response = client.post(START, {"model": "demand-forecasting", "reason": "new promotions"})
    run = PipelineRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("governance:run_detail", kwargs={"pk": run.pk})
    assert run.reason == "new promotions" and run.requested_by == f"user:{lead.pk}"
    assert AuditEvent.objects.filter(action="pipeline_run.started", actor_id=str(lead.pk)).exists()


def test_second_start_while_one_is_active_shows_a_message(
    client_for, admin_user, pipelines_settings
):
    first = _start()
    client = client_for(admin_user)
    response = client.post(START, {"model": "demand-forecasting", "reason": "again"}, follow=True)
    body = response.content.decode()
    assert "already queued or running" in body and f"run #{first.pk}" in body
    assert PipelineRun.objects.count() == 1


def test_start_refused_for_other_roles_and_other_owners(
    client_for, make_user, devops, pipelines_settings
):
    assert (
        client_for(devops).post(START, {"model": "demand-forecasting", "reason": "x"}).status_code
        == 403
    )
    owner = make_user(Role.MODEL_OWNER)
    someone = make_user()
    RegisteredModel.objects.filter(slug="demand-forecasting").update(owner=someone)
    response = client_for(owner).post(START, {"model": "demand-forecasting", "reason": "x"})
    assert response.status_code == 403
    assert not PipelineRun.objects.exists()
    # The owner of a model retrains it.
    RegisteredModel.objects.filter(slug="demand-forecasting").update(owner=owner)
    assert (
        client_for(owner).post(START, {"model": "demand-forecasting", "reason": "x"}).status_code
        == 302
    )


def test_start_form_shows_field_errors(client_for, admin_user, pipelines_settings):
    response = client_for(admin_user).post(START, {"model": "demand-forecasting", "reason": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_model_page_links_to_retraining_for_those_who_may(client_for, make_user, auditor):
    url = reverse("governance:model_detail", kwargs={"model": "demand-forecasting"})
    lead_page = client_for(make_user(Role.DATA_SCIENCE_LEAD)).get(url).content.decode()
    assert f"{START}?model=demand-forecasting" in lead_page
    auditor_page = client_for(auditor).get(url).content.decode()
    assert f"{START}?model=demand-forecasting" not in auditor_page
    assert f"{LIST}?model=demand-forecasting" in auditor_page


def test_run_page_polls_while_active_and_shows_the_outcome_when_done(client_for, auditor, train):
    queued = _start("customer-segmentation")
    client = client_for(auditor)
    progress = reverse("governance:run_progress", kwargs={"pk": queued.pk})
    body = client.get(reverse("governance:run_detail", kwargs={"pk": queued.pk})).content.decode()
    assert f'hx-get="{progress}"' in body and 'hx-trigger="every 2s"' in body
    assert "Waiting for a worker" in body

    done = train("demand-forecasting")
    body = client.get(reverse("governance:run_progress", kwargs={"pk": done.pk})).content.decode()
    assert "hx-trigger" not in body  # finished: polling stops
    assert "<html" not in body  # the partial only
    assert f"demand-forecasting {done.version.version}" in body
    assert 'data-testid="step-train"' in body and "content hash verified" in body
    assert "sent to the review board for canary" in body


def test_run_page_shows_the_comparison_of_a_discarded_run(client_for, auditor, train):
    from governance.choices import Target
    from governance.services.registry import target_assign

    first = train("demand-forecasting", compare=False)
    target_assign(version=first.version, target=Target.PRODUCTION, actor=TESTER)
    run = train("demand-forecasting")
    body = (
        client_for(auditor)
        .get(reverse("governance:run_detail", kwargs={"pk": run.pk}))
        .content.decode()
    )
    assert "Discarded" in body and "Nobody is asked to review it" in body
    assert 'data-testid="comparison"' in body and "(decides)" in body


def test_cancel_from_the_run_page(client_for, admin_user, auditor, pipelines_settings):
    run = _start()
    url = reverse("governance:run_cancel", kwargs={"pk": run.pk})
    assert client_for(auditor).post(url).status_code == 403
    client_for(admin_user).post(url)
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED


def test_schedules_are_listed_and_edited_by_admins_and_leads(client_for, admin_user, make_user):
    schedules = reverse("governance:schedule_list")
    body = client_for(make_user(Role.DATA_SCIENCE_LEAD)).get(schedules).content.decode()
    assert body.count('data-testid="schedule-row"') == 3
    assert "Retrain customer segmentation each season" in body and "3,6,9,12" in body

    task = PeriodicTask.objects.get(args='["demand-forecasting"]')
    edit = reverse("governance:schedule_edit", kwargs={"pk": task.pk})
    fields = {"minute": "30", "hour": "2", "day_of_week": "0", "day_of_month": "*"}
    response = client_for(admin_user).post(edit, {**fields, "month_of_year": "*"})
    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "2", "0")
    assert task.enabled is False  # the box was not ticked
    event = AuditEvent.objects.get(action="pipeline_schedule.updated")
    assert event.payload_record.data["after"]["crontab"]["minute"] == "30"

    bad = client_for(admin_user).post(edit, {**fields, "hour": "25", "month_of_year": "*"})
    assert bad.status_code == 400 and "field-error" in bad.content.decode()


def test_schedules_refused_for_other_roles(client_for, devops, auditor):
    task = PeriodicTask.objects.get(args='["demand-forecasting"]')
    assert client_for(devops).get(reverse("governance:schedule_list")).status_code == 403
    edit = reverse("governance:schedule_edit", kwargs={"pk": task.pk})
    assert client_for(auditor).post(edit, {"minute": "1"}).status_code == 403


def test_run_badge_says_no_review_when_none_was_opened(client_for, auditor, pipelines_settings):
    """A succeeded run that compared nothing (the first training of a model) opened no
    review: its badge on the list and on its page says so instead of "sent to review";
    a run that compared and succeeded keeps "sent to review"."""
    quiet = _start("demand-forecasting")
    PipelineRun.objects.filter(pk=quiet.pk).update(
        state=RunState.SUCCEEDED, outcome="registered; no review opened.", comparison={}
    )
    compared = _start("customer-segmentation")
    PipelineRun.objects.filter(pk=compared.pk).update(
        state=RunState.SUCCEEDED, outcome="sent", comparison={"better": True, "new": {}}
    )
    client = client_for(auditor)
    listing = client.get(LIST).content.decode()
    assert listing.count("Succeeded: version sent to review") == 1
    assert "Succeeded: version registered, no review opened" in listing
    page = client.get(reverse("governance:run_detail", args=[quiet.pk])).content.decode()
    assert "sent to review" not in page and "no review opened" in page
