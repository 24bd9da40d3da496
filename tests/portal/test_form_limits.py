"""Every form field that fills a text column holds no more than the column: a too-long
value is the form's field error, never a database error (a 500 on PostgreSQL)."""

import pytest
from django_celery_beat.models import CrontabSchedule

from datasubjects.forms import ExtendForm, PublicRequestForm, RefuseForm
from datasubjects.models import DataSubjectRequest
from governance.forms import CardSectionForm
from governance.models import CardRevision
from governance.training.forms import RunStartForm, ScheduleForm
from governance.training.models import PipelineRun
from portal.accounts.forms import EmailAuthenticationForm, UserCreateForm
from portal.accounts.models import User
from portal.apitokens.forms import ApiTokenCreateForm
from portal.apitokens.models import ApiToken
from portal.notify.forms import WebhookEndpointCreateForm
from portal.notify.models import WebhookEndpoint

# (form class, its field, the model, the column it fills)
BOUND = [
    (UserCreateForm, "email", User, "email"),
    (UserCreateForm, "full_name", User, "full_name"),
    (EmailAuthenticationForm, "username", User, "email"),
    (ApiTokenCreateForm, "name", ApiToken, "name"),
    (WebhookEndpointCreateForm, "name", WebhookEndpoint, "name"),
    (WebhookEndpointCreateForm, "url", WebhookEndpoint, "url"),
    (WebhookEndpointCreateForm, "secret", WebhookEndpoint, "secret"),
    (CardSectionForm, "comment", CardRevision, "comment"),
    (RunStartForm, "reason", PipelineRun, "reason"),
    *(
        (PublicRequestForm, name, DataSubjectRequest, name)
        for name in ("email", "details", "agent_name", "agent_email")
    ),
    (ExtendForm, "reason", DataSubjectRequest, "extension_reason"),
    (RefuseForm, "reason", DataSubjectRequest, "refusal_reason"),
    *(
        (ScheduleForm, name, CrontabSchedule, name)
        for name in ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
    ),
]


@pytest.mark.parametrize(
    ("form", "field", "model", "column"),
    BOUND,
    ids=[f"{form.__name__}.{field}" for form, field, _, _ in BOUND],
)
def test_form_field_is_no_longer_than_its_column(form, field, model, column):
    limit = form.base_fields[field].max_length
    assert limit is not None, f"{form.__name__}.{field} has no max_length"
    assert limit <= model._meta.get_field(column).max_length
