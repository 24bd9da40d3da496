"""One filter per list, serving the HTML page."""

import django_filters

from monitoring.choices import IncidentSource, IncidentStatus, Severity
from monitoring.models import Incident


class IncidentFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=IncidentStatus.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices, empty_label="any severity")
    source = django_filters.ChoiceFilter(choices=IncidentSource.choices, empty_label="any source")
    model = django_filters.CharFilter(field_name="model__slug", label="Model")

    class Meta:
        model = Incident
        fields = ["status", "severity", "source", "model"]
