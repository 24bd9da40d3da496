"""The Django admin offers none of the four-eyes changes: it only shows."""

import pytest

from portal.accounts.choices import Role
from portal.accounts.models import RoleGrant
from portal.accounts.services import role_grant
from portal.changes.choices import ChangeState

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "model",
    [
        "accounts/user",
        "accounts/rolegrant",
        "changes/changerequest",
        "changes/approvedconfiguration",
        "reviews/reviewpolicy",
    ],
)
def test_django_admin_cannot_add_governance_objects(client_for, make_user, model):
    admin = make_user(Role.PORTAL_ADMIN, is_staff=True, is_superuser=True)
    response = client_for(admin).post(f"/django-admin/{model}/add/", {})
    assert response.status_code in (403, 404)


def test_django_admin_cannot_approve_a_change_request(client_for, make_user, outsider):
    admin = make_user(Role.PORTAL_ADMIN, is_staff=True, is_superuser=True)
    proposer = make_user(Role.PORTAL_ADMIN)
    change = role_grant(user=outsider, role=Role.DEVOPS, granted_by=proposer)
    client = client_for(admin)
    url = f"/django-admin/changes/changerequest/{change.pk}/change/"
    assert change.summary in client.get(url).content.decode()  # shown...
    client.post(url, {"state": "approved"})  # ...never changed
    client.post(f"/django-admin/changes/changerequest/{change.pk}/delete/", {"post": "yes"})
    change.refresh_from_db()
    assert change.state == ChangeState.PENDING
    assert not RoleGrant.objects.filter(user=outsider, role=Role.DEVOPS).exists()
