"""One filter set for the audit trail, serving the page and `GET /api/v1/audit/events`."""

import django_filters
from django import forms
from django.db.models import QuerySet

from portal.audit.forms import AuditFilterForm
from portal.audit.models import AuditEvent


class AuditEventFilter(django_filters.FilterSet):
    """Actor, action, object and period; validation (actor syntax, since ≤ until) is the
    form's, so the page shows field errors and the API answers 400 with the same ones."""

    # Labels are explicit: django-filter derives them from the model field, which reads
    # "[invalid name]" for a method filter and "Occurred at date is greater than or
    # equal to" for the period.
    action = django_filters.CharFilter(
        label="Action starts with",
        lookup_expr="startswith",
        help_text="prefix, e.g. role. or login.failed",
        widget=forms.TextInput(attrs={"placeholder": "role. or login.failed"}),
    )
    actor = django_filters.CharFilter(
        label="Actor",
        method="filter_actor",
        help_text="user:12, token:ab12cd34 or system",
        widget=forms.TextInput(attrs={"placeholder": "user:12, token:ab12cd34 or system"}),
    )
    object_type = django_filters.CharFilter(label="Object type")
    object_id = django_filters.CharFilter(label="Object id")
    since = django_filters.DateFilter(
        label="Since",
        field_name="occurred_at",
        lookup_expr="date__gte",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = django_filters.DateFilter(
        label="Until",
        field_name="occurred_at",
        lookup_expr="date__lte",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "object_type", "object_id", "since", "until"]
        form = AuditFilterForm

    def filter_actor(self, queryset: QuerySet[AuditEvent], name: str, value: str) -> QuerySet:
        kind, _, ident = value.partition(":")
        return queryset.filter(actor_type=kind, **({"actor_id": ident} if ident else {}))
