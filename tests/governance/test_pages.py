"""Registry and card pages: content, role refusals, the card editor, diffs, exports,
query counts that do not grow with rows, and no inline script."""

import io
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pypdf import PdfReader

from governance.models import CardRevision, RegisteredModel
from governance.services.cards import card_section_update
from governance.services.registry import target_assign
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from tests.governance.conftest import CI

pytestmark = pytest.mark.django_db

MODEL = "demand-forecasting"


@pytest.fixture()
def lead(make_user):
    return make_user(Role.DATA_SCIENCE_LEAD)


@pytest.fixture()
def served(register):
    """1.0.0 in production, 1.1.0 in canary, 1.2.0 registered."""
    v1 = register("1.0.0", metrics={"mae": 400.0, "mape": 0.14})
    v2 = register("1.1.0", metrics={"mae": 380.0, "mape": 0.13})
    v3 = register("1.2.0", metrics={"mae": 410.0, "mape": 0.12})
    target_assign(version=v1, target="production", actor=CI)
    target_assign(version=v2, target="canary", actor=CI)
    return v1, v2, v3


def version_url(name, version="1.2.0", **kwargs):
    return reverse(f"governance:{name}", kwargs={"model": MODEL, "version": version, **kwargs})


def no_inline_script(html: str) -> bool:
    return all(
        re.search(r"\bsrc=", tag)
        for tag in re.findall(r"<script[^>]*>", html)
        if "application/json" not in tag
    )


def test_model_list_shows_production_canary_and_latest_metrics(client_for, auditor, served):
    html = client_for(auditor).get(reverse("governance:model_list")).content.decode()
    start = html.index('href="/models/demand-forecasting/"')
    row = html[start : html.index("</tr>", start)]
    assert ">1.0.0</a>" in row  # production
    assert ">1.1.0</a>" in row  # canary
    assert ">1.2.0</a>" in row  # latest
    assert "MAE (units) <strong>410" in row
    assert 'data-testid="open-reviews"' in html
    assert "Product recommendation" in html


def test_model_list_filters_by_kind(client_for, auditor):
    html = client_for(auditor).get(reverse("governance:model_list") + "?kind=segmentation")
    html = html.content.decode()
    assert "Customer segmentation" in html and "Demand forecasting</a>" not in html


def test_registry_pages_refuse_people_without_a_role(client_for, outsider, served):
    client = client_for(outsider)
    for url in [
        reverse("governance:model_list"),
        reverse("governance:model_detail", kwargs={"model": MODEL}),
        version_url("version_detail"),
        version_url("card_export", fmt="pdf"),
    ]:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "1.2.0" not in response.content.decode()


def test_registry_pages_send_anonymous_people_to_sign_in(client):
    response = client.get(reverse("governance:model_list"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_model_page_has_timeline_and_chart_data_without_inline_js(client_for, auditor, served):
    response = client_for(auditor).get(reverse("governance:model_detail", kwargs={"model": MODEL}))
    html = response.content.decode()
    assert (
        html.index(">1.2.0</strong>")
        < html.index(">1.1.0</strong>")
        < html.index(">1.0.0</strong>")
    )
    assert "serves production" in html and "serves canary" in html
    data = json.loads(
        re.search(r'id="metrics-trend-data"[^>]*>(.*?)</script>', html, re.S).group(1)
    )
    assert data["versions"] == ["1.0.0", "1.1.0", "1.2.0"]
    mae = next(s for s in data["series"] if s["name"] == "mae")
    assert mae["values"] == [400.0, 380.0, 410.0]
    assert "js/plotly.min.js" in html and "js/metrics-chart.js" in html
    assert no_inline_script(html)


def _trend(html: str) -> dict:
    return json.loads(
        re.search(r'id="metrics-trend-data"[^>]*>(.*?)</script>', html, re.S).group(1)
    )


def test_model_page_chart_draws_the_picked_metric_with_its_naive_baseline(
    client_for, auditor, register
):
    """The naive forecast's score is the dashed line of its metric, not a metric of its
    own in the picker."""
    register("1.0.0", metrics={"mae": 6.5, "baseline_mae": 9.0, "mape": 0.2})
    register("1.1.0", metrics={"mae": 6.1, "mape": 0.18})
    url = reverse("governance:model_detail", kwargs={"model": MODEL})
    html = client_for(auditor).get(url + "?metric=mape").content.decode()
    trend = _trend(html)
    assert [s["name"] for s in trend["series"]] == ["mae", "mape"]
    assert trend["selected"] == "mape"
    mae, mape = trend["series"]
    assert mae["baseline"] == [9.0, None] and mape["baseline"] is None
    assert mape["percent"] is True and mae["percent"] is False
    picker = html[html.index('data-testid="metric-picker"') : html.index('id="metrics-trend"')]
    assert 'value="mape" checked' in picker and 'value="mae">' in picker
    assert "baseline_mae" not in picker


def test_model_page_chart_falls_back_to_the_first_metric_for_an_unknown_one(
    client_for, auditor, served
):
    url = reverse("governance:model_detail", kwargs={"model": MODEL})
    response = client_for(auditor).get(url + "?metric=%3Cscript%3E")
    assert response.status_code == 200
    assert _trend(response.content.decode())["selected"] == "mae"


def test_model_page_state_filter_is_checkboxes_keeping_the_metric(client_for, auditor, served):
    url = reverse("governance:model_detail", kwargs={"model": MODEL})
    html = client_for(auditor).get(url + "?state=canary&state=production&metric=mape")
    html = html.content.decode()
    filters = html[html.index('data-testid="version-filters"') :]
    filters = filters[: filters.index("</form>")]
    assert "<select" not in filters
    assert re.search(r'type="checkbox" name="state" value="canary"[^>]*checked', filters)
    assert re.search(r'type="checkbox" name="state" value="production"[^>]*checked', filters)
    assert '<input type="hidden" name="metric" value="mape">' in filters
    timeline = html[html.index('data-testid="versions"') :]
    assert ">1.1.0</strong>" in timeline and ">1.0.0</strong>" in timeline
    assert ">1.2.0</strong>" not in timeline


def test_model_page_filters_versions_by_state(client_for, auditor, served):
    url = reverse("governance:model_detail", kwargs={"model": MODEL}) + "?state=canary"
    html = client_for(auditor).get(url).content.decode()
    timeline = html[html.index('data-testid="versions"') :]
    assert ">1.1.0</strong>" in timeline and ">1.0.0</strong>" not in timeline


def test_version_page_shows_lineage_comparison_card_and_history(client_for, auditor, served):
    v3 = served[2]
    html = client_for(auditor).get(version_url("version_detail")).content.decode()
    assert v3.data_version in html and v3.code_version in html and v3.image_digest in html
    comparison = html[html.index('data-testid="metrics-comparison"') :]
    assert "against production (1.0.0)" in html
    assert "+10" in comparison and "worse" in comparison  # MAE 410 vs 400
    assert "better" in comparison  # MAPE 0.12 vs 0.14
    assert 'data-testid="card-incomplete"' in html
    assert 'data-testid="section-fairness_assessment"' in html
    history = html[html.index('data-testid="audit-history"') :]
    assert "version.registered" in history
    assert "You can read this card" in html
    assert "/edit/" not in html  # auditors get no edit buttons


def test_card_editor_saves_a_section_with_revision_and_audit(client_for, lead, served):
    client = client_for(lead)
    url = version_url("card_section_edit", key="data_schema")
    assert "Input fields" in client.get(url).content.decode()
    response = client.post(
        url,
        {
            "content": "Inputs **as delivered**.",
            "fields": "store_id | string | BigQuery sales | no | Store\n"
            "customer_pid | string | CRM | yes",
            "comment": "schema for 1.2.0",
        },
    )
    assert response.status_code == 302
    section = served[2].card.sections.get(key="data_schema")
    assert section.data["fields"][1] == {
        "name": "customer_pid",
        "type": "string",
        "source": "CRM",
        "personal_data": True,
        "description": "",
    }
    revision = CardRevision.objects.filter(card=served[2].card).order_by("-number").first()
    assert (revision.section_key, revision.comment, revision.author) == (
        "data_schema",
        "schema for 1.2.0",
        lead,
    )
    event = AuditEvent.objects.get(action="card.section_updated")
    assert event.object_id == "demand-forecasting@1.2.0"
    page = client.get(version_url("version_detail")).content.decode()
    assert "<strong>as delivered</strong>" in page
    assert "card.section_updated" in page


def test_card_editor_shows_field_errors(client_for, lead, served):
    response = client_for(lead).post(
        version_url("card_section_edit", key="data_schema"),
        {"content": "x", "fields": "store_id | string | BigQuery | perhaps"},
    )
    assert response.status_code == 400
    assert "personal data must be yes or no" in response.content.decode()
    assert not AuditEvent.objects.filter(action="card.section_updated").exists()


def test_card_editor_refuses_readers_with_403(client_for, auditor, make_user, served):
    for user in (auditor, make_user(Role.PRIVACY_OFFICER)):
        client = client_for(user)
        url = version_url("card_section_edit", key="limitations")
        assert client.get(url).status_code == 403
        assert client.post(url, {"content": "vandalised"}).status_code == 403
        assert (
            client.post(version_url("card_section_confirm", key="limitations")).status_code == 403
        )
    assert served[2].card.sections.get(key="limitations").content == ""


def test_confirm_button_confirms_an_inherited_section(client_for, lead, served):
    v1 = served[0]
    card_section_update(
        card=v1.card, key="limitations", content="New stores.", data=None, actor_user=lead
    )
    from governance.services.registry import version_register
    from tests.governance.conftest import registration_body

    v9, _ = version_register(model_slug=MODEL, data=registration_body("1.0.1"), actor=CI)
    client = client_for(lead)
    page = client.get(version_url("version_detail", version="1.0.1")).content.decode()
    assert "inherited, not confirmed" in page
    response = client.post(version_url("card_section_confirm", version="1.0.1", key="limitations"))
    assert response.status_code == 302
    assert v9.card.sections.get(key="limitations").inherited is False


def test_compare_page_diffs_cards_and_metrics(client_for, lead, served):
    card_section_update(
        card=served[2].card,
        key="limitations",
        content="Apparel is weak.",
        data=None,
        actor_user=lead,
    )
    url = reverse("governance:model_compare", kwargs={"model": MODEL}) + "?a=1.0.0&b=1.2.0"
    html = client_for(lead).get(url).content.decode()
    diff = html[html.index('data-testid="diff-limitations"') :]
    assert "added" in diff[:300] and "+ Apparel is weak." in diff
    assert "worse" in html  # MAE went up


def test_compare_page_rejects_the_same_version_twice(client_for, auditor, served):
    url = reverse("governance:model_compare", kwargs={"model": MODEL}) + "?a=1.0.0&b=1.0.0"
    response = client_for(auditor).get(url)
    assert response.status_code == 400
    assert "two different versions" in response.content.decode()


def test_revisions_page_lists_and_diffs_revisions(client_for, lead, served):
    card = served[2].card
    card_section_update(card=card, key="limitations", content="one", data=None, actor_user=lead)
    card_section_update(card=card, key="limitations", content="two", data=None, actor_user=lead)
    html = client_for(lead).get(version_url("card_revisions") + "?old=2&new=3").content.decode()
    assert "- one" in html and "+ two" in html
    assert html.count("<tr><td>") >= 3


def test_exports_download_pdf_markdown_and_json(client_for, auditor, served):
    client = client_for(auditor)
    pdf = client.get(version_url("card_export", fmt="pdf"))
    assert pdf["Content-Type"] == "application/pdf"
    assert 'filename="model-card-demand-forecasting-1.2.0.pdf"' in pdf["Content-Disposition"]
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "Demand forecasting" in text
    markdown = client.get(version_url("card_export", fmt="md")).content.decode()
    assert markdown.startswith("---\nmodel_name: demand-forecasting")
    data = json.loads(client.get(version_url("card_export", fmt="json")).content)
    assert data["model_details"]["version"]["name"] == "1.2.0"
    governance = client.get(version_url("card_export", fmt="governance.json"))
    assert (
        'filename="model-card-demand-forecasting-1.2.0.governance.json"'
        in (governance["Content-Disposition"])
    )
    assert json.loads(governance.content)["model_card"]["version"] == "1.2.0"
    assert client.get(version_url("card_export", fmt="docx")).status_code == 404


def _queries(client, url):
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_model_page_query_count_does_not_grow(client_for, auditor, register):
    client = client_for(auditor)
    url = reverse("governance:model_detail", kwargs={"model": MODEL})
    register("1.0.0")
    register("1.1.0")
    small = _queries(client, url)
    for n in range(2, 14):
        register(f"1.{n}.0")
    assert _queries(client, url) == small


def test_model_list_query_count_does_not_grow(client_for, auditor, register):
    client = client_for(auditor)
    url = reverse("governance:model_list")
    register("1.0.0")
    small = _queries(client, url)
    for n in range(4):
        RegisteredModel.objects.create(slug=f"extra-{n}", name=f"Extra {n}", kind="forecasting")
        target_assign(version=register("1.0.0", model=f"extra-{n}"), target="production", actor=CI)
    assert _queries(client, url) == small


def test_compare_page_keeps_one_direction_whichever_order_is_picked(client_for, lead, served):
    """Picking the newer version first still compares newer against older everywhere on
    the page: the metrics heading, the cards heading, and the newer card's text shown
    as added (never as removed)."""
    card_section_update(
        card=served[2].card,
        key="limitations",
        content="Apparel is weak.",
        data=None,
        actor_user=lead,
    )
    url = reverse("governance:model_compare", kwargs={"model": MODEL}) + "?a=1.2.0&b=1.0.0"
    html = client_for(lead).get(url).content.decode()
    assert "Metrics: 1.2.0 against 1.0.0" in html
    assert "Cards: 1.0.0 → 1.2.0" in html
    diff = html[html.index('data-testid="diff-limitations"') :]
    assert "+ Apparel is weak." in diff and "- Apparel is weak." not in diff
