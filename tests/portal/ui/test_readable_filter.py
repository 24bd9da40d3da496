"""The `readable` template filters: JSON values as people read them."""

import pytest
from django.template import Context, Template

from portal.ui.numbers import number_text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.123456789, "0.1235"),
        (12345.678, "12,346"),
        (1234567, "1,234,567"),
        (350.0, "350"),
        (-0.00012345, "-0.0001234"),
        (1e-7, "1e-07"),
        (0.0, "0"),
    ],
)
def test_number_text_keeps_four_significant_digits_and_separators(value, shown):
    assert number_text(value) == shown


def _render(text: str, **context: object) -> str:
    return Template("{% load readable %}" + text).render(Context(context))


@pytest.mark.parametrize(
    ("value", "html"),
    [
        (None, "—"),
        (True, "yes"),
        (False, "no"),
        ([], "—"),
        (["category", "day_of_week"], "category, day_of_week"),
        ({"min": 4, "use": None}, "min: 4; use: —"),
        ({"4": 0.17612345}, '4: <span title="0.17612345">0.1761</span>'),
        ("<b>", "&lt;b&gt;"),
    ],
)
def test_readable_shows_json_values_without_python_reprs(value, html):
    assert _render("{{ value|readable }}", value=value) == html


def test_readable_fields_lists_an_object_as_names_and_values():
    html = _render("{{ value|readable_fields }}", value={"holds": False, "role": "devops"})
    assert html == '<dl class="facts"><dt>holds</dt><dd>no</dd><dt>role</dt><dd>DevOps</dd></dl>'


def test_ratio_percent_and_significant_filters():
    assert _render("{{ v|ratio_percent }}", v=0.1234) == "12.3%"
    assert _render("{{ v|significant:3 }}", v=2.6733945235299874) == "2.67"
    assert _render("{{ v|significant }}", v=None) == "—"


def test_role_slugs_read_as_labels():
    assert _render("{{ v|role_label }}", v="data_science_lead") == "Data science lead"
    html = _render("{{ v|readable_fields }}", v={"role": "privacy_officer"})
    assert html == '<dl class="facts"><dt>role</dt><dd>Privacy officer</dd></dl>'
    # A policy's required roles, as a governance change shows its before and after.
    html = _render(
        "{{ v|readable_fields }}", v={"required_roles": {"data_science_lead": 1, "devops": 1}}
    )
    assert "<dd>Data science lead: 1; DevOps: 1</dd>" in html
