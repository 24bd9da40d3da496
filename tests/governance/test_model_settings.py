"""Portal admins set a model's owner, risk tier and description; each change audited."""

import pytest
from django.urls import reverse

from governance.models import RegisteredModel
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db
URL = reverse("governance:model_settings", args=["demand-forecasting"])


def test_admin_sets_owner_and_risk_tier_and_it_is_audited(client_for, admin_user, make_user):
    owner = make_user(Role.MODEL_OWNER)
    response = client_for(admin_user).post(
        URL, {"owner": owner.pk, "risk_tier": "high", "description": "Daily sales."}, follow=True
    )
    assert "Model settings saved" in response.content.decode()
    model = RegisteredModel.objects.get(slug="demand-forecasting")
    assert (model.owner_id, model.risk_tier) == (owner.pk, "high")
    event = AuditEvent.objects.get(action="model.updated")
    assert event.object_id == "demand-forecasting"
    assert event.payload_record.data["owner_id"] == {"from": None, "to": owner.pk}
    assert event.payload_record.data["risk_tier"]["to"] == "high"


def test_owner_must_hold_the_model_owner_role(client_for, admin_user, make_user):
    auditor = make_user(Role.AUDITOR)
    response = client_for(admin_user).post(
        URL, {"owner": auditor.pk, "risk_tier": "low", "description": ""}, follow=True
    )
    assert "Nothing saved" in response.content.decode()
    assert RegisteredModel.objects.get(slug="demand-forecasting").owner_id is None
    assert not AuditEvent.objects.filter(action="model.updated").exists()


@pytest.mark.parametrize("role", [Role.DATA_SCIENCE_LEAD, Role.MODEL_OWNER, Role.AUDITOR])
def test_model_settings_are_refused_to_other_roles(client_for, make_user, role):
    response = client_for(make_user(role)).post(URL, {"risk_tier": "high"})
    assert response.status_code == 403
    assert RegisteredModel.objects.get(slug="demand-forecasting").risk_tier != "high"


def test_model_page_shows_the_settings_form_to_admins_only(client_for, admin_user, make_user):
    page = reverse("governance:model_detail", args=["demand-forecasting"])
    assert 'data-testid="model-settings"' in client_for(admin_user).get(page).content.decode()
    other = client_for(make_user(Role.DATA_SCIENCE_LEAD)).get(page).content.decode()
    assert 'data-testid="model-settings"' not in other


def test_invalid_settings_show_field_errors_not_a_redirect(client_for, admin_user):
    """Owner 999 and risk tier "extreme": the model page comes back (400) with each
    field's error beside it and nothing is saved or audited."""
    response = client_for(admin_user).post(
        URL, {"owner": 999, "risk_tier": "extreme", "description": ""}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert html.count('class="field-error"') >= 2
    assert "extreme is not one of the available choices" in html
    assert RegisteredModel.objects.get(slug="demand-forecasting").owner_id is None
    assert not AuditEvent.objects.filter(action="model.updated").exists()
