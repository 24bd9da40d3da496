"""The shared form include names every input: a group of checkboxes or radio buttons is
a fieldset with a legend, never a label pointing at no input (`for=""`)."""

import pytest
from django import forms
from django.template.loader import render_to_string

from portal.accounts.choices import Role


class _Grouped(forms.Form):
    name = forms.CharField()
    purposes = forms.MultipleChoiceField(
        choices=[("a", "A"), ("b", "B")], widget=forms.CheckboxSelectMultiple
    )
    given = forms.ChoiceField(choices=[("1", "Yes"), ("0", "No")], widget=forms.RadioSelect)


def test_groups_are_fieldsets_with_a_legend_and_single_inputs_have_labels():
    html = render_to_string("includes/form.html", {"form": _Grouped()})
    assert 'for=""' not in html
    assert '<label for="id_name">Name</label>' in html
    assert html.count("<fieldset") == 2
    assert "<legend>Purposes</legend>" in html and "<legend>Given</legend>" in html


@pytest.mark.django_db
def test_consent_page_has_no_label_without_an_input(client_for, make_user):
    """The consent page's record form (purposes as checkboxes) names each of its inputs."""
    page = client_for(make_user(Role.PRIVACY_OFFICER)).get("/data-subjects/consent/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'for=""' not in body
    assert "<legend>Purposes</legend>" in body
