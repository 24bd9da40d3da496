"""The home page shows what waits for the signed-in person, by their roles: reviews
waiting for their board role, their own open review requests and training runs, open
incidents, overdue data subject requests for privacy officers; an empty state that says
what to do next; names, not pseudonymous ids; and a query count that does not grow with
the rows."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from datasubjects.choices import RequestKind, RequestState
from datasubjects.models import DataSubjectRequest
from governance.choices import Target
from governance.models import RegisteredModel
from governance.reviews.choices import ReviewSource, Verdict
from governance.reviews.services import review_decide, review_open
from governance.training.choices import RunState, RunTrigger
from governance.training.models import PipelineRun
from monitoring.choices import IncidentStatus
from monitoring.models import Incident
from portal.accounts.choices import Role
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def _staging_review(owner, version=None):
    version = version or ModelVersionFactory(
        model=RegisteredModel.objects.get(slug="demand-forecasting")
    )
    review, _ = review_open(
        version=version,
        target=Target.STAGING,
        requested_by_actor=owner.audit_actor(),
        source=ReviewSource.UI,
    )
    return review


def _incident(title: str, status: str = IncidentStatus.FIRING) -> Incident:
    return Incident.objects.create(
        fingerprint=title[:64],
        title=title,
        status=status,
        started_at=timezone.now(),
        model=RegisteredModel.objects.get(slug="demand-forecasting"),
    )


def _request(email: str, *, due_in_days: int) -> DataSubjectRequest:
    return DataSubjectRequest.objects.create(
        kind=RequestKind.ACCESS,
        state=RequestState.IN_PROGRESS,
        email=email,
        subject_ref=email,
        verified_at=timezone.now(),
        received_on=timezone.localdate() - datetime.timedelta(days=40),
        due_on=timezone.localdate() + datetime.timedelta(days=due_in_days),
    )


def _run(slug: str, person, state: str = RunState.SUCCEEDED) -> PipelineRun:
    return PipelineRun.objects.create(
        model=RegisteredModel.objects.get(slug=slug),
        trigger=RunTrigger.MANUAL,
        requested_by=person.audit_actor().ref,
        state=state,
        planned_version="9.9.9",
    )


def test_home_lists_reviews_waiting_for_the_members_role(client_for, make_user):
    owner = make_user(Role.MODEL_OWNER)
    lead = make_user(Role.DATA_SCIENCE_LEAD)
    review = _staging_review(owner)
    html = client_for(lead).get("/").content.decode()
    assert 'data-testid="home-reviews-waiting"' in html
    assert f'href="/reviews/{review.pk}/"' in html
    assert "Data science lead" in html  # the role it asks for, by label
    assert "data_science_lead" not in html


def test_home_drops_a_review_once_the_member_decided(client_for, make_user):
    owner = make_user(Role.MODEL_OWNER)
    lead = make_user(Role.DATA_SCIENCE_LEAD)
    review = _staging_review(owner)
    # Two leads' worth of staging policy is not needed: one approval decides it, and it
    # no longer waits for this person either way.
    review_decide(
        review=review, reviewer=lead, verdict=Verdict.APPROVE, role=Role.DATA_SCIENCE_LEAD
    )
    html = client_for(lead).get("/").content.decode()
    assert f'href="/reviews/{review.pk}/"' not in html
    assert "No review waits for your decision." in html


def test_home_hides_the_board_panel_from_people_without_a_board_role(client_for, make_user):
    owner = make_user(Role.MODEL_OWNER)
    _staging_review(owner)
    auditor = make_user(Role.AUDITOR)
    html = client_for(auditor).get("/").content.decode()
    assert 'data-testid="home-reviews-waiting"' not in html
    assert 'data-testid="home-reviews-requested"' not in html


def test_home_shows_the_owners_open_requests_and_runs(client_for, make_user):
    owner = make_user(Role.MODEL_OWNER)
    other = make_user(Role.MODEL_OWNER)
    review = _staging_review(owner)
    mine = _run("demand-forecasting", owner)
    theirs = _run("customer-segmentation", other)
    html = client_for(owner).get("/").content.decode()
    requested = html.split('data-testid="home-reviews-requested"')[1].split("</section>")[0]
    assert f'href="/reviews/{review.pk}/"' in requested
    runs = html.split('data-testid="home-runs"')[1].split("</section>")[0]
    assert f'href="/pipelines/runs/{mine.pk}/"' in runs
    assert f'href="/pipelines/runs/{theirs.pk}/"' not in runs


def test_home_empty_states_say_what_to_do_next(client_for, make_user):
    owner = make_user(Role.MODEL_OWNER)
    html = client_for(owner).get("/").content.decode()
    assert "You have no review open." in html and 'href="/reviews/open/"' in html
    assert "You have started no training run." in html and 'href="/pipelines/runs/start/"' in html
    assert "No incident is open" in html


def test_home_lists_open_incidents_not_closed_ones(client_for, make_user):
    _incident("MAE above threshold")
    _incident("Old drift alert", status=IncidentStatus.CLOSED)
    html = client_for(make_user(Role.DEVOPS)).get("/").content.decode()
    incidents = html.split('data-testid="home-incidents"')[1].split("</section>")[0]
    assert "MAE above threshold" in incidents
    assert "Old drift alert" not in incidents


def test_home_shows_overdue_requests_to_privacy_officers_only(client_for, make_user):
    late = _request("late@example.com", due_in_days=-2)
    on_time = _request("on-time@example.com", due_in_days=10)
    html = client_for(make_user(Role.PRIVACY_OFFICER)).get("/").content.decode()
    overdue = html.split('data-testid="home-overdue-requests"')[1].split("</section>")[0]
    assert f"/data-subjects/{late.public_id}/" in overdue
    assert f"/data-subjects/{on_time.public_id}/" not in overdue
    assert "The GDPR's one month" in overdue
    devops_html = client_for(make_user(Role.DEVOPS)).get("/").content.decode()
    assert 'data-testid="home-overdue-requests"' not in devops_html


def test_home_names_the_people_in_the_latest_audit_events(client_for, make_user):
    owner = make_user(Role.MODEL_OWNER, full_name="Olive Owner")
    _staging_review(owner)
    html = client_for(make_user(Role.AUDITOR)).get("/").content.decode()
    assert "Olive Owner (Model owner)" in html
    assert f"user:{owner.pk}" not in html


def _rows(numbers: range, owner) -> None:
    """One of each row the home page lists, per number."""
    models = ["demand-forecasting", "customer-segmentation", "product-recommendation"]
    for n in numbers:
        _staging_review(owner)
        _run(models[n], owner)
        _incident(f"incident {n}")
        _request(f"late{n}@example.com", due_in_days=-1 - n)


@pytest.mark.parametrize("role", [Role.DATA_SCIENCE_LEAD, Role.MODEL_OWNER, Role.PRIVACY_OFFICER])
def test_home_query_count_does_not_grow_with_rows(client_for, make_user, role):
    person = make_user(*sorted({role, Role.MODEL_OWNER, Role.AUDITOR}))
    client = client_for(person)
    counts = []
    for numbers in (range(0, 1), range(1, 3)):  # one row of each, then three
        _rows(numbers, person)
        client.get("/")  # warm the session and role caches alike for both sizes
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/")
        assert response.status_code == 200
        counts.append(len(queries))
    html = response.content.decode()
    assert html.count('href="/monitoring/incidents/') == 3
    assert counts[0] == counts[1], counts
