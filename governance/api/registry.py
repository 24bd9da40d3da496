"""Registry API: CI registers versions; people and machines read models, versions, cards.

Tokens need `registry:write` to register and `registry:read` to read; signed-in people
read with any role.
"""

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.cards_schema import section_title
from governance.choices import LifecycleState
from governance.filters import VersionFilter
from governance.models import ModelVersion
from governance.permissions import REGISTRY_READERS, REGISTRY_WRITERS
from governance.selectors.cards import card_missing_sections, card_sections
from governance.selectors.registry import (
    model_get,
    models_overview,
    version_get,
    versions_for_model,
)
from governance.services.registry import VersionConflict, version_register
from portal.api.exceptions import Conflict
from portal.api.inputs import input_validated
from portal.api.pagination import StrictLimitOffsetPagination
from portal.api.responses import created_response
from portal.api.schema import error_response
from portal.apitokens.choices import Scope
from portal.audit.actors import actor_for_request, client_ip_for_request

# A lake snapshot id, as a version registered from outside may give it for its data.
SNAPSHOT_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")


class VersionOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ModelVersion"

    model = serializers.CharField(source="model.slug")
    version = serializers.CharField()
    tag = serializers.CharField()
    state = serializers.ChoiceField(choices=LifecycleState.choices)
    targets = serializers.SerializerMethodField()
    artifact_uri = serializers.CharField()
    image_uri = serializers.CharField()
    image_digest = serializers.CharField()
    registry_resource_name = serializers.CharField()
    registry_version_id = serializers.CharField()
    registry_aliases = serializers.ListField(child=serializers.CharField())
    data_version = serializers.SerializerMethodField(
        help_text=(
            "The version of the data it was trained on, as its source names it: an "
            "import's files and their SHA-256 (`name@sha256:<hex>`), a BigQuery table "
            "snapshot, a DVC revision (`dvc:<repo>@<rev>:<path>`), a Cloud Storage "
            "object generation; for the lake's own sample, the snapshot's content hash. "
            "For a version registered from outside, what its registration gave."
        )
    )
    snapshot_id = serializers.SerializerMethodField(
        help_text=(
            "The lake snapshot it was trained on (`sha256:<hex>`, a content hash of the "
            "tables), or null when it was not trained on a lake snapshot."
        )
    )
    code_version = serializers.CharField()
    pipeline_run_id = serializers.CharField()
    hyperparameters = serializers.DictField()
    metrics = serializers.DictField()
    metric_slices = serializers.DictField()
    lineage_complete = serializers.BooleanField()
    registration_digest = serializers.CharField()
    registered_by = serializers.CharField()
    registered_at = serializers.DateTimeField()
    metrics_updated_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_targets(self, version: ModelVersion) -> list[str]:
        return sorted(a.target for a in version.assignments.all())

    def get_data_version(self, version: ModelVersion) -> str:
        run = _training_run(version)
        return run.data_version if run is not None and run.data_version else version.data_version

    def get_snapshot_id(self, version: ModelVersion) -> str | None:
        run = _training_run(version)
        if run is not None:
            return run.snapshot_id
        return version.data_version if SNAPSHOT_ID_RE.match(version.data_version) else None

    def get_url(self, version: ModelVersion) -> str:
        return reverse(
            "api-version-detail", kwargs={"model": version.model.slug, "version": version.version}
        )


def _training_run(version: ModelVersion) -> Any:
    """The portal's training run that registered `version` and recorded its snapshot
    (prefetched by versions_for_model), or None for a version registered from outside."""
    return next((run for run in version.runs.all() if run.snapshot_id), None)


def _paginated(name: str, item: serializers.Serializer) -> serializers.Serializer:
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
        },
    )


class ModelListApi(APIView):
    """The client's models, each with the version serving each target."""

    required_scopes = (Scope.REGISTRY_READ,)
    required_roles = REGISTRY_READERS

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RegisteredModel"

        slug = serializers.CharField()
        name = serializers.CharField()
        kind = serializers.CharField()
        description = serializers.CharField()
        risk_tier = serializers.CharField()
        owner = serializers.IntegerField(source="owner_id", allow_null=True)
        versions_count = serializers.IntegerField()
        latest_version = serializers.CharField(source="latest.version", allow_null=True)
        targets = serializers.SerializerMethodField()

        def get_targets(self, model: object) -> dict[str, str | None]:
            return {t: v.version for t, v in model.targets.items()}  # type: ignore[attr-defined]

    @extend_schema(
        operation_id="models_list",
        responses={200: _paginated("PaginatedModels", OutputSerializer(many=True))},
        tags=["registry"],
    )
    def get(self, request: Request) -> Response:
        paginator = StrictLimitOffsetPagination()
        page = paginator.paginate_queryset(models_overview(), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


def _column_max(name: str) -> int:
    """The length of ModelVersion's column `name`: the API refuses longer text (400
    naming the field), never a database error."""
    return ModelVersion._meta.get_field(name).max_length


class VersionsApi(APIView):
    """GET lists a model's versions; POST registers one (idempotent for CI retries)."""

    @property
    def required_scopes(self) -> tuple[str, ...]:
        if self.request.method == "POST":
            return (Scope.REGISTRY_WRITE,)
        return (Scope.REGISTRY_READ,)

    @property
    def required_roles(self) -> tuple[str, ...]:
        return REGISTRY_WRITERS if self.request.method == "POST" else REGISTRY_READERS

    class RegisterInputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "VersionRegistration"

        version = serializers.CharField(
            max_length=_column_max("version"), help_text="Semantic version, e.g. 2.1.0."
        )
        tag = serializers.CharField(
            max_length=_column_max("tag"),
            required=False,
            allow_blank=True,
            help_text="Defaults to <kind>-v<major>.",
        )
        artifact_uri = serializers.CharField(
            max_length=_column_max("artifact_uri"), help_text="gs://... of the trained model."
        )
        image_uri = serializers.CharField(
            max_length=_column_max("image_uri"), required=False, allow_blank=True
        )
        image_digest = serializers.CharField(
            max_length=_column_max("image_digest"),
            help_text="sha256:<64 hex> of the serving image.",
        )
        registry_resource_name = serializers.CharField(
            max_length=_column_max("registry_resource_name"), required=False, allow_blank=True
        )
        data_version = serializers.CharField(
            max_length=_column_max("data_version"),
            help_text="Content hash, DVC revision or BigQuery snapshot id.",
        )
        code_version = serializers.CharField(
            max_length=_column_max("code_version"), help_text="Git commit SHA."
        )
        pipeline_run_id = serializers.CharField(
            max_length=_column_max("pipeline_run_id"), required=False, allow_blank=True
        )
        hyperparameters = serializers.DictField(required=False)
        metrics = serializers.DictField(
            required=False, help_text="Metric name to number (or list of numbers)."
        )
        metric_slices = serializers.DictField(
            required=False, help_text="Dimension -> slice -> metric name -> number."
        )

    @extend_schema(
        operation_id="versions_list",
        parameters=[
            OpenApiParameter(
                "state", enum=LifecycleState.values, many=True, description="Lifecycle state"
            ),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses={
            200: _paginated("PaginatedVersions", VersionOutputSerializer(many=True)),
            400: error_response("A query parameter is malformed."),
            404: error_response("No such model."),
        },
        tags=["registry"],
    )
    def get(self, request: Request, model: str) -> Response:
        registered = model_get(slug=model)
        filters = VersionFilter(request.query_params, queryset=versions_for_model(model=registered))
        if not filters.is_valid():
            raise ValidationError(
                {k: [e["message"] for e in v] for k, v in filters.errors.get_json_data().items()}
            )
        paginator = StrictLimitOffsetPagination()
        page = paginator.paginate_queryset(filters.qs, request, view=self)
        return paginator.get_paginated_response(VersionOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="versions_register",
        request=RegisterInputSerializer,
        responses={
            201: OpenApiResponse(VersionOutputSerializer, description="Registered now."),
            200: OpenApiResponse(
                VersionOutputSerializer, description="Already registered with this same body."
            ),
            400: error_response("A field is missing, blank or malformed."),
            404: error_response("No such model."),
            409: OpenApiResponse(
                inline_serializer(
                    name="RegistrationConflict",
                    fields={
                        "error": serializers.CharField(),
                        "fields": serializers.DictField(child=serializers.JSONField()),
                        "differing_fields": serializers.ListField(child=serializers.CharField()),
                    },
                ),
                description="This version exists with a different body.",
            ),
        },
        tags=["registry"],
    )
    def post(self, request: Request, model: str) -> Response:
        input_validated(self.RegisterInputSerializer, request)
        try:
            version, created = version_register(
                model_slug=model,
                # the raw body: the service also refuses fields it does not know
                data=dict(request.data),
                actor=actor_for_request(request),
                client_ip=client_ip_for_request(request),
            )
        except VersionConflict as conflict:
            raise Conflict(
                f"Version {conflict.version.version} of {model} is already registered with "
                f"different values for: {', '.join(conflict.differing)}.",
                extra={
                    "fields": {
                        name: [
                            f"registered {values['registered']!r}, "
                            f"this request {values['requested']!r}"
                        ]
                        for name, values in conflict.differing.items()
                    },
                    "differing_fields": list(conflict.differing),
                },
            ) from None
        version = versions_for_model(model=version.model).get(pk=version.pk)
        data = VersionOutputSerializer(version).data
        if created:
            return created_response(data)
        return Response(data, status=status.HTTP_200_OK)


class VersionDetailApi(APIView):
    """One version with its lineage, metrics, state and targets."""

    required_scopes = (Scope.REGISTRY_READ,)
    required_roles = REGISTRY_READERS

    @extend_schema(
        operation_id="versions_retrieve",
        responses={200: VersionOutputSerializer, 404: error_response("No such version.")},
        tags=["registry"],
    )
    def get(self, request: Request, model: str, version: str) -> Response:
        found = version_get(model_slug=model, version=version)
        found = versions_for_model(model=found.model).get(pk=found.pk)
        return Response(VersionOutputSerializer(found).data)


class CardSectionOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "CardSection"

    key = serializers.CharField()
    title = serializers.CharField()
    content = serializers.CharField(help_text="Markdown.")
    data = serializers.DictField()
    inherited = serializers.BooleanField()
    updated_at = serializers.DateTimeField(allow_null=True)


class CardApi(APIView):
    """A version's model card: sections, what is inherited, what is missing."""

    required_scopes = (Scope.REGISTRY_READ,)
    required_roles = REGISTRY_READERS

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ModelCard"

        model = serializers.CharField()
        version = serializers.CharField()
        inherited_from = serializers.CharField(allow_null=True)
        complete = serializers.BooleanField()
        missing_sections = serializers.ListField(child=serializers.CharField())
        revisions = serializers.IntegerField()
        updated_at = serializers.DateTimeField()
        sections = CardSectionOutputSerializer(many=True)

    @extend_schema(
        operation_id="versions_card_retrieve",
        responses={200: OutputSerializer, 404: error_response("No such version.")},
        tags=["registry"],
    )
    def get(self, request: Request, model: str, version: str) -> Response:
        found = version_get(model_slug=model, version=version)
        card = found.card
        missing = card_missing_sections(card=card)
        data = {
            "model": model,
            "version": found.version,
            "inherited_from": (
                card.inherited_from.version.version if card.inherited_from_id else None
            ),
            "complete": not missing,
            "missing_sections": missing,
            "revisions": card.revisions.count(),
            "updated_at": card.updated_at,
            "sections": [
                CardSectionOutputSerializer(
                    {
                        "key": s.key,
                        "title": section_title(s.key),
                        "content": s.content,
                        "data": s.data,
                        "inherited": s.inherited,
                        "updated_at": s.updated_at if s.pk else None,
                    }
                ).data
                for s in card_sections(card=card)
            ],
        }
        return Response(self.OutputSerializer(data).data)
