"""Board roles and portal admin take two people: one admin proposes, another (never
the proposer, never the person it is about) approves, and only then does it apply."""

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.accounts.choices import FOUR_EYES_ROLES, Role
from portal.accounts.models import RoleGrant, User
from portal.accounts.services import role_grant, role_revoke
from portal.audit.models import AuditEvent
from portal.changes.choices import ChangeState
from portal.changes.models import ChangeRequest
from portal.changes.selectors import change_sides_named
from portal.changes.services import change_approve, change_reject
from portal.changes.tasks import expire as expire_task
from portal.notify.models import EmailNotification

pytestmark = pytest.mark.django_db


@pytest.fixture()
def second_admin(make_user):
    return make_user(Role.PORTAL_ADMIN)


def holds(user: User, role: str) -> bool:
    return RoleGrant.objects.filter(user=user, role=role, revoked_at__isnull=True).exists()


@pytest.mark.parametrize("role", sorted(FOUR_EYES_ROLES))
def test_role_grant_by_one_admin_leaves_a_pending_request_and_no_role(admin_user, outsider, role):
    """An admin alone granting a board role or portal admin changes nothing but a
    pending request with the exact before and after, audited."""
    change = role_grant(user=outsider, role=role, granted_by=admin_user)

    assert isinstance(change, ChangeRequest) and change.state == ChangeState.PENDING
    assert not holds(outsider, role)
    assert change.before == {"user": outsider.pk, "role": role, "holds": False}
    assert change.after == {"user": outsider.pk, "role": role, "holds": True}
    assert change.subject_user_ids == [outsider.pk]
    event = AuditEvent.objects.get(action="change_request.proposed", object_id=str(change.pk))
    assert event.actor_id == str(admin_user.pk)
    assert event.payload_record.data["after"]["holds"] is True
    assert not AuditEvent.objects.filter(action="role.granted").exists()


def test_role_grant_to_oneself_waits_too(admin_user):
    """An admin cannot make themselves a board member alone."""
    change = role_grant(user=admin_user, role=Role.DATA_SCIENCE_LEAD, granted_by=admin_user)
    assert change.state == ChangeState.PENDING
    assert not holds(admin_user, Role.DATA_SCIENCE_LEAD)
    with pytest.raises(ValidationError, match="proposed this change"):
        change_approve(change=change, approved_by=admin_user)


def test_change_approve_by_a_second_admin_grants_once_and_audits_both(
    admin_user, second_admin, outsider
):
    """The second admin's approval grants the role in the same transaction; the grant's
    audit event names proposer and approver; a repeat approval is refused."""
    change = role_grant(user=outsider, role=Role.PRIVACY_OFFICER, granted_by=admin_user)

    change_approve(change=change, approved_by=second_admin, reason="joins the board")

    assert holds(outsider, Role.PRIVACY_OFFICER)
    change.refresh_from_db()
    assert change.state == ChangeState.APPROVED and change.decided_by == second_admin
    granted = AuditEvent.objects.get(action="role.granted", object_id=str(outsider.pk))
    assert granted.actor_id == str(second_admin.pk)
    assert granted.payload_record.data["proposed_by"] == f"user:{admin_user.pk}"
    assert AuditEvent.objects.filter(action="change_request.approved").count() == 1
    with pytest.raises(ValidationError, match="already approved"):
        change_approve(change=change, approved_by=second_admin)
    assert RoleGrant.objects.filter(user=outsider, role=Role.PRIVACY_OFFICER).count() == 1


def test_change_approve_by_the_person_it_is_about_is_refused(admin_user, second_admin):
    """A second admin cannot approve their own promotion to the board."""
    change = role_grant(user=second_admin, role=Role.DEVOPS, granted_by=admin_user)
    with pytest.raises(ValidationError, match="about you"):
        change_approve(change=change, approved_by=second_admin)
    assert not holds(second_admin, Role.DEVOPS)


@pytest.mark.parametrize("role", [r for r in Role if r != Role.PORTAL_ADMIN])
def test_change_approve_by_a_non_admin_is_refused(admin_user, outsider, make_user, role):
    """Only portal admins approve, whatever other role they hold."""
    change = role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)
    with pytest.raises(ValidationError, match="Only a portal admin"):
        change_approve(change=change, approved_by=make_user(role))
    assert not holds(outsider, Role.DEVOPS)


def test_change_reject_leaves_no_role(admin_user, second_admin, outsider):
    change = role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)
    change_reject(change=change, rejected_by=second_admin, actor=second_admin.audit_actor())
    change.refresh_from_db()
    assert change.state == ChangeState.REJECTED and not holds(outsider, Role.DEVOPS)
    assert AuditEvent.objects.filter(action="change_request.rejected").exists()


def test_a_second_pending_request_for_the_same_grant_is_refused(admin_user, outsider):
    role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)
    with pytest.raises(ValidationError, match="already waiting"):
        role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)


def test_change_expires_undecided_after_the_ttl(settings, admin_user, second_admin, outsider):
    """Nobody decides within GOVERNANCE_CHANGE_TTL_HOURS: the beat task expires the
    request (audited, the board told) and it can no longer be approved."""
    settings.GOVERNANCE_CHANGE_TTL_HOURS = 72
    change = role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=71), tick=False):
        assert expire_task() == 0
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=73), tick=False):
        assert expire_task() == 1
        with pytest.raises(ValidationError, match="expired"):
            change_approve(change=change, approved_by=second_admin)
    change.refresh_from_db()
    assert change.state == ChangeState.EXPIRED and not holds(outsider, Role.DEVOPS)
    assert AuditEvent.objects.filter(action="change_request.expired").count() == 1
    assert EmailNotification.objects.filter(event_id=f"change-{change.pk}-expired").exists()


def test_role_revoke_applies_at_once_and_tells_the_board(admin_user, make_user):
    """Taking a board role away only tightens: it applies at once, and every board
    member and admin is e-mailed."""
    lead = make_user(Role.DATA_SCIENCE_LEAD)
    privacy = make_user(Role.PRIVACY_OFFICER)
    auditor = make_user(Role.AUDITOR)
    grant = role_revoke(user=lead, role=Role.DATA_SCIENCE_LEAD, revoked_by=admin_user)
    assert not holds(lead, Role.DATA_SCIENCE_LEAD)
    told = set(
        EmailNotification.objects.filter(event_id=f"role-revoke-{grant.pk}").values_list(
            "recipient_id", flat=True
        )
    )
    assert told == {admin_user.pk, privacy.pk}
    assert auditor.pk not in told


def test_board_is_emailed_on_proposal_and_on_the_grant(
    admin_user, second_admin, make_user, outsider
):
    """Every board member and admin hears of the proposal, the decision and the new
    board member."""
    devops = make_user(Role.DEVOPS)
    change = role_grant(user=outsider, role=Role.DATA_SCIENCE_LEAD, granted_by=admin_user)
    proposed = EmailNotification.objects.filter(event_id=f"change-{change.pk}-pending")
    assert set(proposed.values_list("recipient_id", flat=True)) == {
        admin_user.pk,
        second_admin.pk,
        devops.pk,
    }
    assert "Grant Data science lead" in proposed.first().subject
    change_approve(change=change, approved_by=second_admin)
    grant = RoleGrant.objects.get(user=outsider, role=Role.DATA_SCIENCE_LEAD)
    gained = EmailNotification.objects.filter(event_id=f"role-grant-{grant.pk}")
    assert set(gained.values_list("recipient_id", flat=True)) == {
        admin_user.pk,
        second_admin.pk,
        devops.pk,
        outsider.pk,
    }
    assert EmailNotification.objects.filter(event_id=f"change-{change.pk}-approved").count() == 4


def test_grant_page_proposes_a_board_role(client_for, admin_user, outsider):
    response = client_for(admin_user).post(
        reverse("accounts:user_role_grant", args=[outsider.pk]),
        {"role": "privacy_officer"},
        follow=True,
    )
    html = response.content.decode()
    assert "applies when another portal admin approves" in html
    assert "Grant Privacy officer to" in html  # the user's page lists the proposal
    assert not holds(outsider, Role.PRIVACY_OFFICER)


def test_change_pages_let_a_second_admin_approve(client_for, admin_user, second_admin, outsider):
    """The proposer sees no approve button; the second admin approves on the page and
    the user's page shows who proposed and who approved."""
    change = role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)
    url = reverse("changes:change_detail", args=[change.pk])
    html = client_for(admin_user).get(url).content.decode()
    assert "another portal admin must approve it" in html and "Approve:" not in html
    response = client_for(admin_user).post(reverse("changes:change_approve", args=[change.pk]))
    assert not holds(outsider, Role.DEVOPS)

    client = client_for(second_admin)
    assert "Approve: apply this change now" in client.get(url).content.decode()
    response = client.post(
        reverse("changes:change_approve", args=[change.pk]), {"reason": "ok"}, follow=True
    )
    assert "It applies now" in response.content.decode()
    assert holds(outsider, Role.DEVOPS)
    page = client.get(reverse("accounts:user_detail", args=[outsider.pk])).content.decode()
    assert admin_user.email in page and second_admin.email in page


def test_change_page_names_the_person_a_role_change_is_about(
    client_for, admin_user, second_admin, make_user
):
    """The change's before and after name the person (name and roles now, as the audit
    browser names actors) instead of their bare id."""
    person = make_user(Role.AUDITOR, full_name="Ada Lovelace")
    change = role_grant(user=person, role=Role.DATA_SCIENCE_LEAD, granted_by=admin_user)
    html = client_for(second_admin).get(reverse("changes:change_detail", args=[change.pk]))
    html = html.content.decode()
    before = html.split("<h2>Before</h2>")[1].split("</section>")[0]
    after = html.split("<h2>After</h2>")[1].split("</section>")[0]
    for side in (before, after):
        assert "<dt>user</dt><dd>Ada Lovelace (Auditor)</dd>" in side
        assert "<dt>role</dt><dd>Data science lead</dd>" in side
        assert f"<dd>{person.pk}</dd>" not in side


def test_change_sides_keep_ids_unless_names_may_be_shown(admin_user, outsider):
    """Without the right to see names the documents are shown as stored; a person no
    longer there stays an id; the stored change is never altered."""
    change = role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)
    stored = (dict(change.before), dict(change.after))
    hidden = change_sides_named(change=change, names_visible=False)
    assert [side["user"] for side in hidden] == [outsider.pk, outsider.pk]
    change.before["user"] = change.after["user"] = outsider.pk + 1000
    gone = change_sides_named(change=change, names_visible=True)
    assert [side["user"] for side in gone] == [outsider.pk + 1000] * 2
    change.refresh_from_db()
    assert (change.before, change.after) == stored


def test_home_page_lists_pending_changes_to_those_who_may_decide(
    client_for, admin_user, second_admin, outsider, make_user
):
    change = role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)
    link = reverse("changes:change_detail", args=[change.pk])
    assert link in client_for(second_admin).get("/").content.decode()
    assert link not in client_for(admin_user).get("/").content.decode()  # the proposer
    board_home = client_for(make_user(Role.DEVOPS)).get("/").content.decode()
    assert link not in board_home  # the board reads it, admins decide it
    assert f"Grant DevOps to {outsider.email}" in board_home
    assert "Grant DevOps" not in client_for(make_user(Role.AUDITOR)).get("/").content.decode()


@pytest.mark.parametrize("role", [r for r in Role if r != Role.PORTAL_ADMIN])
def test_change_pages_are_refused_to_non_admins(client_for, admin_user, outsider, make_user, role):
    change = role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)
    client = client_for(make_user(role))
    assert client.get(reverse("changes:change_list")).status_code == 403
    assert client.get(reverse("changes:change_detail", args=[change.pk])).status_code == 403
    assert client.post(reverse("changes:change_approve", args=[change.pk])).status_code == 403
    assert client.post(reverse("changes:change_reject", args=[change.pk])).status_code == 403
    change.refresh_from_db()
    assert change.state == ChangeState.PENDING


@pytest.mark.parametrize("count", [1, 4])
def test_change_list_query_count_does_not_grow(client_for, admin_user, make_user, count):
    """The list page costs the same number of queries for one change or several."""
    second = make_user(Role.PORTAL_ADMIN)
    for _ in range(count):
        change = role_grant(user=make_user(), role=Role.DEVOPS, granted_by=admin_user)
        change_approve(change=change, approved_by=second)
    client = client_for(admin_user)
    with CaptureQueriesContext(connection) as queries:
        html = client.get(reverse("changes:change_list")).content.decode()
    assert html.count("Grant DevOps to") == count
    assert len(queries) == 5
