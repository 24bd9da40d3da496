"""Model cards: creation and inheritance, edits and confirmations with revisions and
audit, completeness, diffs, safe Markdown, exports; metrics replacement and targets."""

import io
import json

import pytest
import yaml
from django.core.exceptions import PermissionDenied, ValidationError
from pypdf import PdfReader

from governance.cards_schema import section_title
from governance.choices import CardSectionKey, LifecycleState
from governance.models import CardRevision, TargetAssignment
from governance.rendering import markdown_to_html
from governance.selectors.card_exports import (
    card_export_governance,
    card_export_json,
    card_export_markdown,
    card_export_pdf,
)
from governance.selectors.cards import card_diff, card_missing_sections, card_revisions_diff
from governance.services.cards import card_section_confirm, card_section_update
from governance.services.registry import (
    target_assign,
    version_metrics_replace,
    version_set_state,
)
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from tests.governance.conftest import CI

pytestmark = pytest.mark.django_db

SCHEMA = {
    "fields": [
        {"name": "store_id", "type": "string", "source": "BigQuery sales", "personal_data": False},
        {"name": "customer_pid", "type": "string", "source": "CRM", "personal_data": True},
    ]
}


@pytest.fixture()
def lead(make_user):
    return make_user(Role.DATA_SCIENCE_LEAD)


def fill_card(card, user):
    """Write every required section."""
    texts = {
        CardSectionKey.MODEL_DETAILS: ("Gradient-boosted trees.", {"owners": ["ML team"]}),
        CardSectionKey.INTENDED_USE: ("Replenishment. Out of scope: pricing.", None),
        CardSectionKey.DATA_SCHEMA: ("Inputs.", SCHEMA),
        CardSectionKey.TRAINING_DATA: (
            "Two years of sales.",
            {
                "dataset": "sales",
                "period_start": "2024-01-01",
                "period_end": "2025-12-31",
                "row_count": 1200000,
            },
        ),
        CardSectionKey.EVALUATION_DATA: ("Last 8 weeks.", None),
        CardSectionKey.LIMITATIONS: ("New stores.", None),
        CardSectionKey.FAIRNESS_ASSESSMENT: (
            "Stores by income quartile.",
            {
                "assessments": [
                    {
                        "groups": "income quartiles",
                        "metric": "MAPE",
                        "result": "within 1.2 points",
                        "assessed_by": "DS lead",
                    }
                ]
            },
        ),
        CardSectionKey.ETHICAL_CONSIDERATIONS: ("Staples floor.", None),
    }
    for key, (content, data) in texts.items():
        card_section_update(card=card, key=key, content=content, data=data, actor_user=user)


def test_card_of_first_version_has_only_performance_filled(register):
    version = register("1.0.0")
    card = version.card
    assert card.inherited_from is None
    performance = card.sections.get(key="performance")
    assert performance.data["metrics"]["mae"] == 350.5
    assert performance.data["slices"]["region"]["north"] == {"mae": 360.0}
    missing = card_missing_sections(card=card)
    assert "performance" not in missing
    assert missing[0] == "model_details"
    assert "caveats_recommendations" not in missing  # optional
    assert len(missing) == 8
    # one revision for the one non-empty section, by the registering actor
    revision = CardRevision.objects.get(card=card)
    assert (revision.number, revision.section_key, revision.actor) == (
        1,
        "performance",
        "system:tests",
    )


def test_new_version_card_inherits_sections_marked_until_confirmed(register, lead):
    v1 = register("1.0.0")
    fill_card(v1.card, lead)
    assert card_missing_sections(card=v1.card) == []
    v2 = register("1.1.0", metrics={"mae": 300.0})
    card = v2.card
    assert card.inherited_from == v1.card
    limitations = card.sections.get(key="limitations")
    assert limitations.inherited is True
    assert limitations.content == "New stores."
    training = card.sections.get(key="training_data")
    assert training.data["data_version"] == v2.data_version  # lineage, not v1's
    assert training.data["row_count"] == 1200000
    performance = card.sections.get(key="performance")
    assert performance.inherited is False
    assert performance.data["metrics"] == {"mae": 300.0}
    assert card_missing_sections(card=card) == [
        "model_details",
        "intended_use",
        "data_schema",
        "training_data",
        "evaluation_data",
        "limitations",
        "fairness_assessment",
        "ethical_considerations",
    ]


def test_card_inherits_from_previous_semver_not_latest_registration(register, lead):
    v100 = register("1.0.0")
    card_section_update(
        card=v100.card, key="limitations", content="from 1.0.0", data=None, actor_user=lead
    )
    v120 = register("1.2.0")
    card_section_update(
        card=v120.card, key="limitations", content="from 1.2.0", data=None, actor_user=lead
    )
    hotfix = register("1.0.1")
    assert hotfix.card.inherited_from == v100.card
    assert hotfix.card.sections.get(key="limitations").content == "from 1.0.0"


def test_section_update_writes_numbered_revision_and_audit(register, lead):
    card = register("1.0.0").card
    card_section_update(
        card=card,
        key="limitations",
        content="Weak on new stores.",
        data=None,
        actor_user=lead,
        comment="first draft",
    )
    card_section_update(
        card=card,
        key="limitations",
        content="Weak on new stores and apparel.",
        data=None,
        actor_user=lead,
    )
    revisions = list(CardRevision.objects.filter(card=card).order_by("number"))
    assert [r.number for r in revisions] == [1, 2, 3]
    assert revisions[1].author == lead and revisions[1].comment == "first draft"
    assert revisions[2].content == "Weak on new stores and apparel."
    events = AuditEvent.objects.filter(action="card.section_updated").order_by("sequence")
    assert events.count() == 2
    event = events.last()
    assert (event.actor_type, event.actor_id) == ("user", str(lead.pk))
    assert event.object_id == "demand-forecasting@1.0.0"
    assert event.payload_record.data == {
        "section": "limitations",
        "revision": 3,
        "was_inherited": False,
        "content_changed": True,
    }


def test_section_update_with_no_change_writes_nothing(register, lead):
    card = register("1.0.0").card
    card_section_update(card=card, key="limitations", content="x", data=None, actor_user=lead)
    card_section_update(card=card, key="limitations", content="x", data=None, actor_user=lead)
    assert CardRevision.objects.filter(card=card, section_key="limitations").count() == 1


def test_section_update_refused_for_readers_and_other_models_owner(register, make_user, auditor):
    card = register("1.0.0").card
    owner = make_user(Role.MODEL_OWNER)
    card.version.model.owner = make_user(Role.MODEL_OWNER)
    card.version.model.save()
    for user in (auditor, owner, make_user(Role.PRIVACY_OFFICER), make_user(Role.PORTAL_ADMIN)):
        with pytest.raises(PermissionDenied):
            card_section_update(
                card=card, key="limitations", content="x", data=None, actor_user=user
            )
    assert card.sections.get(key="limitations").content == ""
    assert not AuditEvent.objects.filter(action="card.section_updated").exists()


def test_model_owner_edits_the_model_they_own(register, make_user):
    card = register("1.0.0").card
    owner = make_user(Role.MODEL_OWNER)
    card.version.model.owner = owner
    card.version.model.save()
    card_section_update(card=card, key="limitations", content="x", data=None, actor_user=owner)
    assert card.sections.get(key="limitations").updated_by == owner


@pytest.mark.parametrize(
    ("key", "data", "field"),
    [
        ("data_schema", {"fields": [{"name": "a", "type": "int"}]}, "data.fields[0].source"),
        (
            "data_schema",
            {"fields": [{"name": "a", "type": "int", "source": "x", "personal_data": "maybe"}]},
            "data.fields[0].personal_data",
        ),
        ("training_data", {"row_count": -5}, "data.row_count"),
        ("training_data", {"period_start": "2025-02-30"}, "data.period_start"),
        (
            "training_data",
            {"period_start": "2025-02-01", "period_end": "2025-01-01"},
            "data.period_end",
        ),
        ("fairness_assessment", {"assessments": [{"groups": "age"}]}, "data.assessments[0].metric"),
        ("limitations", {"anything": 1}, "data"),
    ],
)
def test_section_update_invalid_data_names_the_field(register, lead, key, data, field):
    card = register("1.0.0").card
    with pytest.raises(ValidationError) as exc:
        card_section_update(card=card, key=key, content="", data=data, actor_user=lead)
    assert field in exc.value.message_dict
    assert CardRevision.objects.filter(card=card).count() == 1


def test_section_update_cannot_overwrite_performance_metrics(register, lead):
    card = register("1.0.0").card
    card_section_update(
        card=card,
        key="performance",
        content="Read MAPE per category.",
        data={"metrics": {"mae": 1}},
        actor_user=lead,
    )
    section = card.sections.get(key="performance")
    assert section.content == "Read MAPE per category."
    assert section.data["metrics"]["mae"] == 350.5


def test_confirm_clears_inherited_with_revision_and_audit(register, lead):
    v1 = register("1.0.0")
    fill_card(v1.card, lead)
    card = register("1.1.0").card
    card_section_confirm(card=card, key="limitations", actor_user=lead)
    section = card.sections.get(key="limitations")
    assert section.inherited is False and section.content == "New stores."
    assert "limitations" not in card_missing_sections(card=card)
    revision = card.revisions.order_by("-number").first()
    assert (revision.section_key, revision.inherited, revision.author) == (
        "limitations",
        False,
        lead,
    )
    event = AuditEvent.objects.filter(action="card.section_confirmed").get()
    assert event.object_id == "demand-forecasting@1.1.0"
    assert event.payload_record.data["was_inherited"] is True


def test_confirm_of_a_section_that_is_not_inherited_is_refused(register, lead, auditor):
    card = register("1.0.0").card
    with pytest.raises(ValidationError):
        card_section_confirm(card=card, key="limitations", actor_user=lead)
    with pytest.raises(PermissionDenied):
        card_section_confirm(card=card, key="limitations", actor_user=auditor)


def test_editing_an_inherited_section_confirms_it(register, lead):
    fill_card(register("1.0.0").card, lead)
    card = register("1.1.0").card
    card_section_update(
        card=card, key="limitations", content="New stores; apparel.", data=None, actor_user=lead
    )
    assert card.sections.get(key="limitations").inherited is False


def test_card_diff_between_versions_section_by_section(register, lead):
    fill_card(register("1.0.0").card, lead)
    v2 = register("1.1.0", metrics={"mae": 300.0})
    card_section_update(
        card=v2.card, key="limitations", content="New stores.\nApparel.", data=None, actor_user=lead
    )
    from governance.models import ModelVersion

    v1 = ModelVersion.objects.get(version="1.0.0")
    diffs = {d.key: d for d in card_diff(old_card=v1.card, new_card=v2.card)}
    assert diffs["limitations"].status == "changed"
    assert [
        (line.kind, line.text) for line in diffs["limitations"].lines if line.kind == "add"
    ] == [("add", "Apparel.")]
    assert diffs["intended_use"].status == "unchanged"
    assert diffs["intended_use"].new_inherited is True
    assert diffs["performance"].status == "changed"
    assert diffs["caveats_recommendations"].status == "empty"
    assert next(iter(diffs.values())).title == "Model details"


def test_card_diff_between_two_revisions(register, lead):
    card = register("1.0.0").card
    card_section_update(card=card, key="limitations", content="one", data=None, actor_user=lead)
    card_section_update(card=card, key="limitations", content="two", data=None, actor_user=lead)
    card_section_update(card=card, key="intended_use", content="use", data=None, actor_user=lead)
    diffs = {d.key: d for d in card_revisions_diff(card=card, old_number=2, new_number=4)}
    lines = [(line.kind, line.text) for line in diffs["limitations"].lines if line.kind != "hunk"]
    assert lines == [("remove", "one"), ("add", "two")]
    assert diffs["intended_use"].status == "added"
    assert diffs["performance"].status == "unchanged"


def test_markdown_is_rendered_and_sanitised():
    html = markdown_to_html(
        "# Title\n\n**bold** [ok](https://example.com) [bad](javascript:alert(1))\n\n"
        "<script>alert(1)</script><img src=x onerror=alert(1)>"
    )
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.com"' in html
    assert "javascript:" not in html
    assert "<script" not in html and "onerror" not in html and "<img" not in html


def test_export_json_uses_model_card_toolkit_names(register, lead):
    version = register("1.0.0")
    fill_card(version.card, lead)
    data = card_export_json(card=version.card)
    json.dumps(data)  # serialisable
    assert data["schema_version"] == "0.0.2"
    assert data["model_details"]["name"] == "demand-forecasting"
    assert data["model_details"]["version"]["name"] == "1.0.0"
    assert data["model_details"]["owners"] == [{"name": "ML team", "contact": ""}]
    metrics = data["quantitative_analysis"]["performance_metrics"]
    assert {"type": "mae", "value": "350.5", "slice": ""} in metrics
    assert {"type": "mae", "value": "360.0", "slice": "region=north"} in metrics
    assert data["considerations"]["limitations"] == [{"description": "New stores."}]
    assert data["model_parameters"]["data"][0]["sensitive"]["sensitive_data"] == ["customer_pid"]
    # The toolkit's schema is closed at the top level: governance data has its own
    # document (card_export_governance), not a `governance` key here.
    assert "governance" not in data
    assert card_export_governance(card=version.card)["missing_sections"] == []


def test_export_markdown_has_hugging_face_front_matter(register, lead):
    version = register("1.0.0")
    fill_card(version.card, lead)
    text = card_export_markdown(card=version.card)
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["model_name"] == "demand-forecasting"
    assert "forecasting" in front["tags"]
    results = front["model-index"][0]["results"][0]
    assert results["task"]["type"] == "time-series-forecasting"
    assert {"type": "mape", "name": "MAPE", "value": 0.121} in results["metrics"]
    for key in CardSectionKey.values:
        assert f"## {section_title(key)}" in text
    assert "customer_pid" in text


def test_export_pdf_is_a_pdf_with_every_section_title(register, lead):
    version = register("1.0.0")
    fill_card(version.card, lead)
    pdf = card_export_pdf(card=version.card)
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    text = " ".join(text.split())
    for key in CardSectionKey.values:
        assert section_title(key) in text, key
    assert "Demand forecasting" in text and "1.0.0" in text


def test_metrics_replace_refreshes_card_and_audits(register):
    version = register("1.0.0")
    version_metrics_replace(
        version=version, metrics={"mae": 340.0, "mape": 0.118}, metric_slices={}, actor=CI
    )
    version.refresh_from_db()
    assert version.metrics == {"mae": 340.0, "mape": 0.118}
    performance = version.card.sections.get(key="performance")
    assert performance.data == {"metrics": {"mae": 340.0, "mape": 0.118}}
    assert version.card.revisions.filter(section_key="performance").count() == 2
    event = AuditEvent.objects.get(action="version.metrics_replaced")
    assert event.payload_record.data["after"] == {"mae": 340.0, "mape": 0.118}
    with pytest.raises(ValidationError) as exc:
        version_metrics_replace(version=version, metrics={"mae": "x"}, metric_slices={}, actor=CI)
    assert "metrics.mae" in exc.value.message_dict


def test_target_assign_promotes_and_retires_the_replaced_version(register):
    v1, v2, v3 = register("1.0.0"), register("1.1.0"), register("1.2.0")
    target_assign(version=v1, target="production", actor=CI)
    target_assign(version=v2, target="canary", actor=CI)
    target_assign(version=v2, target="production", actor=CI)
    for v in (v1, v2, v3):
        v.refresh_from_db()
    assert (v1.state, v2.state, v3.state) == ("retired", "production", "registered")
    assert dict(TargetAssignment.objects.values_list("target", "version__version")) == {
        "production": "1.1.0"
    }
    event = AuditEvent.objects.filter(action="version.target_assigned").order_by("sequence").last()
    assert event.payload_record.data["replaced"] == "1.0.0"
    assert event.payload_record.data["replaced_state"] == "retired"


def test_target_assign_rollback_marks_the_replaced_version_rolled_back(register):
    v1, v2 = register("1.0.0"), register("1.1.0")
    target_assign(version=v1, target="production", actor=CI)
    target_assign(version=v2, target="production", actor=CI)
    target_assign(version=v1, target="production", actor=CI, rollback=True)
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.state, v2.state) == ("production", "rolled_back")


def test_staging_assignment_leaves_state_alone(register):
    version = register("1.0.0")
    target_assign(version=version, target="staging", actor=CI)
    version.refresh_from_db()
    assert version.state == "registered"


def test_set_state_follows_the_lifecycle_and_clears_targets(register):
    version = register("1.0.0")
    with pytest.raises(ValidationError):
        version_set_state(version=version, state=LifecycleState.RETIRED, actor=CI)
    version_set_state(version=version, state=LifecycleState.IN_REVIEW, actor=CI)
    version_set_state(version=version, state=LifecycleState.APPROVED, actor=CI)
    target_assign(version=version, target="canary", actor=CI)
    version_set_state(version=version, state=LifecycleState.ROLLED_BACK, actor=CI)
    version.refresh_from_db()
    assert version.state == "rolled_back"
    assert not TargetAssignment.objects.exists()
    last = AuditEvent.objects.filter(action="version.state_changed").order_by("sequence").last()
    assert last.payload_record.data == {
        "from": "canary",
        "to": "rolled_back",
        "targets_cleared": ["canary"],
    }
    discarded = register("1.1.0")
    version_set_state(version=discarded, state=LifecycleState.DISCARDED, actor=CI)
    with pytest.raises(ValidationError):
        target_assign(version=discarded, target="production", actor=CI)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"fields": [{"name": "st\x00re", "type": "str", "source": "pos"}]}, "data.fields[0].name"),
        (
            {"fields": [{"name": "store", "type": "str", "source": "\udfff"}]},
            "data.fields[0].source",
        ),
    ],
)
def test_section_update_refuses_text_the_database_cannot_store(register, lead, data, path):
    """A NUL (refused by jsonb) or an unpaired surrogate in a card table is a field
    error naming its cell, not a database error, and nothing is written."""
    card = register("1.0.0").card
    with pytest.raises(ValidationError) as error:
        card_section_update(
            card=card, key=CardSectionKey.DATA_SCHEMA, content="x", data=data, actor_user=lead
        )
    assert list(error.value.message_dict) == [path]
    assert not CardRevision.objects.filter(card=card, section_key="data_schema").exists()
