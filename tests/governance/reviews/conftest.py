"""Fixtures for the review board: the three board members, a requester, versions."""

import pytest

from governance.choices import Target
from governance.models import TargetAssignment
from governance.reviews.choices import ReviewSource
from governance.reviews.services import review_open
from portal.accounts.choices import Role
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor
from tests.factories import ModelVersionFactory


@pytest.fixture()
def lead(make_user):
    return make_user(Role.DATA_SCIENCE_LEAD)


@pytest.fixture()
def privacy(make_user):
    return make_user(Role.PRIVACY_OFFICER)


@pytest.fixture()
def owner(make_user):
    return make_user(Role.MODEL_OWNER)


@pytest.fixture()
def version(db):
    return ModelVersionFactory()


@pytest.fixture()
def open_review(owner):
    """open_review(version, target="production") -> a review the model owner opened"""

    def make(version, target: str = Target.PRODUCTION, requester=None):
        review, _ = review_open(
            version=version,
            target=target,
            requested_by_actor=(requester or owner).audit_actor(),
            source=ReviewSource.UI,
        )
        return review

    return make


@pytest.fixture()
def approved_for(open_review, lead, devops):
    """approved_for(version, target): opens and approves a staging/canary review."""
    from governance.reviews.services import review_decide

    def make(version, target: str):
        review = open_review(version, target)
        review_decide(review=review, reviewer=lead, verdict="approve", role=Role.DATA_SCIENCE_LEAD)
        if target == Target.CANARY:
            review_decide(review=review, reviewer=devops, verdict="approve", role=Role.DEVOPS)
        review.refresh_from_db()
        return review

    return make


@pytest.fixture()
def ready_for_production(approved_for):
    """A version approved for staging and canary: only the production board is missing."""

    def make(**kwargs):
        version = ModelVersionFactory(**kwargs)
        approved_for(version, Target.STAGING)
        approved_for(version, Target.CANARY)
        return version

    return make


def in_production(version) -> None:
    TargetAssignment.objects.update_or_create(
        model=version.model, target=Target.PRODUCTION, defaults={"version": version}
    )


@pytest.fixture()
def api_token(db, make_user):
    """api_token("gates:read", owner=None) -> (secret, ApiToken)"""

    def make(*scopes: str, owner=None):
        issued = apitoken_create(
            name="ci",
            owner=owner or make_user(Role.DATA_SCIENCE_LEAD),
            scopes=list(scopes),
            expires_at=None,
            actor=Actor.system("tests"),
        )
        return issued.secret, issued.token

    return make
