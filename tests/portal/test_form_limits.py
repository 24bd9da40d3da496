"""Every form field that fills a text column holds no more than the column: a too-long
value is the form's field error, never a database error (a 500 on PostgreSQL). And
every free-text input has a limit at all: form fields filling TextField columns (which
have none of their own) and the API's input serializers, found by walking the apps."""

import importlib
import inspect
from pathlib import Path

import pytest
from django import forms
from django_celery_beat.models import CrontabSchedule
from rest_framework import serializers

from datasubjects.forms import DataSourceForm, ExtendForm, PublicRequestForm, RefuseForm
from datasubjects.models import DataSubjectRequest
from governance.choices import CardSectionKey
from governance.forms import CardSectionForm, ModelSettingsForm
from governance.models import (
    CARD_SECTION_LIST_MAX_CHARS,
    CARD_SECTION_MAX_CHARS,
    MODEL_DESCRIPTION_MAX_CHARS,
    CardRevision,
)
from governance.reviews.forms import DecisionForm, WithdrawForm
from governance.reviews.models import DECISION_COMMENT_MAX_CHARS
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


# --- every free-text input has a limit, TextField columns and API inputs included ----


ROOT = Path(__file__).resolve().parents[2]
APPS = ("portal", "governance", "monitoring", "datasubjects")
# Character fields whose format bounds them (a UUID is 36 characters or invalid).
BOUNDED_BY_FORMAT = (forms.UUIDField,)


def _modules(names: tuple[str, ...]) -> list:
    found = []
    for app in APPS:
        for path in (ROOT / app).glob("**/*.py"):
            if "migrations" in path.parts or "management" in path.parts:
                continue
            if path.name in names or (path.parent.name == "api" and path.suffix == ".py"):
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return [importlib.import_module(name) for name in sorted(set(found))]


def _classes(modules: list, base: type) -> list[type]:
    seen: dict[str, type] = {}
    for module in modules:
        for obj in vars(module).values():
            candidates = [obj]
            if inspect.isclass(obj):
                candidates += [o for o in vars(obj).values() if inspect.isclass(o)]
            for cls in candidates:
                if (
                    inspect.isclass(cls)
                    and issubclass(cls, base)
                    and cls.__module__ == module.__name__
                ):
                    seen[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [seen[name] for name in sorted(seen)]


FORMS = _classes(_modules(("forms.py",)), forms.BaseForm)
INPUT_SERIALIZERS = [
    cls
    for cls in _classes(_modules(("api.py", "serializers.py")), serializers.Serializer)
    if cls.__name__.endswith("InputSerializer")
]


def _unbounded(fields: dict) -> list[str]:
    return [
        name
        for name, field in fields.items()
        if isinstance(field, forms.CharField)
        and not isinstance(field, BOUNDED_BY_FORMAT)
        and field.max_length is None
    ]


def test_the_walks_find_the_forms_and_the_input_serializers():
    names = {cls.__name__ for cls in FORMS + INPUT_SERIALIZERS}
    assert {"DecisionForm", "PublicRequestForm", "RegisterInputSerializer"} <= names
    assert len(INPUT_SERIALIZERS) >= 5


@pytest.mark.parametrize("form", FORMS, ids=[f.__qualname__ for f in FORMS])
def test_every_form_text_field_has_a_max_length(form):
    """A textarea filling a TextField column has no column limit to inherit: without
    its own max_length a 100,000-character comment would be stored."""
    assert _unbounded(form.base_fields) == []


@pytest.mark.parametrize("key", CardSectionKey.values)
def test_card_section_form_fields_added_per_section_have_a_max_length(key):
    assert _unbounded(CardSectionForm(key=key).fields) == []


@pytest.mark.parametrize(
    "serializer", INPUT_SERIALIZERS, ids=[s.__qualname__ for s in INPUT_SERIALIZERS]
)
def test_every_api_input_text_field_has_a_max_length(serializer):
    unbounded = [
        name
        for name, field in serializer().fields.items()
        if isinstance(field, serializers.CharField)
        and not field.read_only
        and field.max_length is None
    ]
    assert unbounded == []


# (form, its field, the documented limit): free text filling a TextField column.
TEXT_LIMITS = [
    (DecisionForm, "comment", DECISION_COMMENT_MAX_CHARS),
    (WithdrawForm, "comment", DECISION_COMMENT_MAX_CHARS),
    (CardSectionForm, "content", CARD_SECTION_MAX_CHARS),
    (ModelSettingsForm, "description", MODEL_DESCRIPTION_MAX_CHARS),
    (DataSourceForm, "config", 20_000),
]


@pytest.mark.parametrize(
    ("form", "field", "limit"), TEXT_LIMITS, ids=[f"{f.__name__}.{n}" for f, n, _ in TEXT_LIMITS]
)
def test_text_field_limit_is_the_documented_one(form, field, limit):
    assert form.base_fields[field].max_length == limit


def test_decision_comment_limit_is_five_thousand_characters():
    assert DECISION_COMMENT_MAX_CHARS == 5_000
    assert CARD_SECTION_LIST_MAX_CHARS == 10_000


def test_decision_form_refuses_a_hundred_thousand_character_comment():
    form = DecisionForm(
        {"verdict": "reject", "role": "devops", "comment": "x" * 100_000}, roles=["devops"]
    )
    assert not form.is_valid()
    assert "at most 5000 characters" in form.errors["comment"][0]
