"""Every place that compares a version with production (the review page, the review's
metrics check, the version page) uses one comparison and says which one it shows."""

import pytest
from django.urls import reverse

from governance.choices import Target
from governance.reviews.checks import checks_evaluate
from governance.services.registry import target_assign
from governance.training.choices import RunState, RunTrigger
from governance.training.models import PipelineRun
from portal.audit.actors import Actor
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture()
def rescored_candidate():
    """Production records MAPE 30% on its own data; rescored on the candidate's held-out
    data it scores 55%, so the candidate's 40% is better like for like, worse against
    the registered figure."""
    production = ModelVersionFactory(metrics={"mape": 0.30})
    target_assign(version=production, target=Target.PRODUCTION, actor=Actor.system("t"))
    candidate = ModelVersionFactory(model=production.model, metrics={"mape": 0.40})
    PipelineRun.objects.create(
        model=production.model,
        trigger=RunTrigger.MANUAL,
        state=RunState.SUCCEEDED,
        planned_version=candidate.version,
        version=candidate,
        comparison={
            "basis": "rescored",
            "production_version": production.version,
            "production": {"mape": 0.55},
        },
    )
    return candidate


def test_review_page_compares_like_for_like_as_the_check_does(
    client_for, lead, open_review, rescored_candidate
):
    """The review page's "Metrics against production" shows production rescored on the
    candidate's held-out data (55%, candidate better), the figure the metrics check
    judged by, not production's registered 30% (which would read as worse)."""
    review = open_review(rescored_candidate, Target.PRODUCTION)
    check = next(
        c
        for c in checks_evaluate(
            version=rescored_candidate, target=review.target, snapshot=review.policy_snapshot
        )
        if c.key == "metrics_not_worse"
    )
    assert check.passed and "rescored" in check.detail

    html = client_for(lead).get(f"/reviews/{review.pk}/").content.decode()
    table = html[html.index('data-testid="metrics-comparison"') :]
    table = table[: table.index("</table>")]
    assert "55.00%" in table and "better" in table
    assert "30.00%" not in table and "worse" not in table
    assert 'data-testid="comparison-kind">like for like' in html


def test_version_and_review_pages_say_registered_metrics_when_not_rescored(
    client_for, lead, auditor, open_review
):
    """Without a like-for-like measurement both pages compare with production's
    registered metrics and label the comparison so."""
    production = ModelVersionFactory(metrics={"mape": 0.30})
    target_assign(version=production, target=Target.PRODUCTION, actor=Actor.system("t"))
    candidate = ModelVersionFactory(model=production.model, metrics={"mape": 0.40})
    review = open_review(candidate, Target.PRODUCTION)
    review_html = client_for(lead).get(f"/reviews/{review.pk}/").content.decode()
    url = reverse("governance:version_detail", args=[candidate.model.slug, candidate.version])
    version_html = client_for(auditor).get(url).content.decode()
    for html in (review_html, version_html):
        assert 'data-testid="comparison-kind">registered metrics' in html
        assert "recorded at its own registration" in html
