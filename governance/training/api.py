"""Training runs API: start a run (`POST /api/v1/pipelines/runs`, scope pipelines:write)
and follow it (`GET /api/v1/pipelines/runs/{id}`, scope pipelines:read).

A second run of a model while one is queued or running is refused with 409 and the
active run's id.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.models import RegisteredModel
from governance.permissions import REGISTRY_READERS
from governance.training.choices import STEP_TITLES, RunBackend, RunState, RunTrigger, StepState
from governance.training.models import PipelineRun
from governance.training.permissions import RUN_STARTERS, may_start_run
from governance.training.selectors import run_get
from governance.training.services import RunAlreadyActive, run_start
from portal.api.exceptions import Conflict
from portal.api.inputs import input_validated
from portal.api.responses import created_response
from portal.api.schema import error_response
from portal.apitokens.choices import Scope
from portal.audit.actors import actor_for_request, client_ip_for_request


class StepOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "PipelineStep"

    name = serializers.CharField()
    title = serializers.SerializerMethodField()
    state = serializers.ChoiceField(choices=StepState.choices)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    log = serializers.CharField()

    def get_title(self, step: object) -> str:
        return STEP_TITLES.get(step.name, step.name)  # type: ignore[attr-defined]


class RunOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "PipelineRun"

    id = serializers.IntegerField()
    model = serializers.CharField(source="model.slug")
    trigger = serializers.ChoiceField(choices=RunTrigger.choices)
    reason = serializers.CharField()
    backend = serializers.ChoiceField(choices=RunBackend.choices)
    state = serializers.ChoiceField(choices=RunState.choices)
    planned_version = serializers.CharField()
    version = serializers.CharField(source="version.version", allow_null=True, default=None)
    snapshot_id = serializers.CharField(
        help_text="The lake snapshot trained on (`sha256:<hex>`, a content hash of the tables)."
    )
    data_version = serializers.CharField(
        help_text=(
            "The version of that data as its source names it: an import's files and their "
            "SHA-256, a BigQuery table snapshot, a DVC revision, a Cloud Storage object "
            "generation; the snapshot's content hash for the lake's own sample."
        )
    )
    params = serializers.DictField()
    attempts = serializers.IntegerField()
    outcome = serializers.CharField()
    comparison = serializers.DictField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    steps = StepOutputSerializer(many=True, source="steps.all")
    url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    def get_url(self, run: PipelineRun) -> str:
        return reverse("api-pipeline-run-detail", kwargs={"pk": run.pk})

    def get_page_url(self, run: PipelineRun) -> str:
        return reverse("governance:run_detail", kwargs={"pk": run.pk})


class RunStartApi(APIView):
    """Start a training run of a model; it is queued for a worker."""

    required_scopes = (Scope.PIPELINES_WRITE,)
    required_roles = RUN_STARTERS

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PipelineRunStart"

        model = serializers.SlugField(
            max_length=64, help_text="The model's slug, e.g. demand-forecasting."
        )
        reason = serializers.CharField(max_length=300, help_text="Why the run is started.")
        params = serializers.DictField(
            required=False,
            help_text="Hyperparameters and evaluation settings overriding the defaults.",
        )

    @extend_schema(
        operation_id="pipeline_runs_start",
        request=InputSerializer,
        responses={
            201: OpenApiResponse(RunOutputSerializer, description="Queued."),
            400: error_response("A field is missing, blank or malformed, or no such model."),
            403: error_response("Missing scope or role."),
            409: error_response("A run of the model is already active."),
        },
        tags=["pipelines"],
    )
    def post(self, request: Request) -> Response:
        data = input_validated(self.InputSerializer, request)
        model = RegisteredModel.objects.filter(slug=data["model"]).first()
        if model is None:
            known = ", ".join(RegisteredModel.objects.values_list("slug", flat=True))
            raise ValidationError({"model": f"No model {data['model']!r}. Known models: {known}."})
        # A token is judged by its owner's rights, as the owner's own session would be.
        if not may_start_run(request.user, model):
            raise PermissionDenied("Only its owner, data science leads and admins retrain it.")
        try:
            run = run_start(
                model=model,
                trigger=RunTrigger.API,
                reason=data["reason"],
                params=data.get("params"),
                actor=actor_for_request(request),
                client_ip=client_ip_for_request(request),
            )
        except RunAlreadyActive as refused:
            active = refused.active
            raise Conflict(
                " ".join(refused.messages),
                extra={
                    "active_run": active.pk if active else None,
                    "active_run_url": (
                        reverse("api-pipeline-run-detail", kwargs={"pk": active.pk})
                        if active
                        else None
                    ),
                },
            ) from None
        body = RunOutputSerializer(run_get(pk=run.pk)).data
        return created_response(body)


class RunDetailApi(APIView):
    """One run: state, steps with their logs, and the outcome."""

    required_scopes = (Scope.PIPELINES_READ,)
    required_roles = REGISTRY_READERS

    @extend_schema(
        operation_id="pipeline_runs_get",
        responses={
            200: RunOutputSerializer,
            404: error_response("No such run."),
        },
        tags=["pipelines"],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(RunOutputSerializer(run_get(pk=pk)).data)
