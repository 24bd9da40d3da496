"""One filter per list, serving both the HTML page and the API."""

import django_filters
from django import forms

from governance.choices import LifecycleState, ModelKind
from governance.models import ModelVersion, RegisteredModel


class VersionFilter(django_filters.FilterSet):
    # Checkboxes, not a multi-select list that needs Ctrl-click to choose two states.
    state = django_filters.MultipleChoiceFilter(
        choices=LifecycleState.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ModelVersion
        fields = ["state"]


class ModelFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=ModelKind.choices, empty_label="any kind")

    class Meta:
        model = RegisteredModel
        fields = ["kind"]
