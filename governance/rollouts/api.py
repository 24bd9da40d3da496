"""Rollouts API: CI starts a rollout after the gate (`POST /api/v1/rollouts`, scope
rollouts:write), follows it (`GET /api/v1/rollouts/{id}`, rollouts:read) and rolls it
back (`POST /api/v1/rollouts/{id}/rollback`, rollouts:write).

A start the gate does not allow is a 403 naming why; a second active rollout of the
model to the target is a 409, and so is rolling back a rollout that has ended (its
body's `state` names the rollout's state).
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.choices import Target
from governance.models import ModelVersion
from governance.permissions import REGISTRY_READERS
from governance.rollouts.choices import AnalysisResult, RolloutState
from governance.rollouts.models import Rollout
from governance.rollouts.permissions import ROLLOUT_OPERATORS, may_operate_rollouts
from governance.rollouts.selectors import rollout_get
from governance.rollouts.services import RolloutRefused, rollout_rollback, rollout_start
from portal.api.exceptions import Conflict
from portal.api.inputs import input_validated
from portal.api.responses import created_response
from portal.api.schema import error_response
from portal.apitokens.choices import Scope
from portal.audit.actors import actor_for_request, client_ip_for_request


class StepOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "RolloutStep"

    index = serializers.IntegerField()
    weight = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    analysed_at = serializers.DateTimeField(allow_null=True)
    result = serializers.ChoiceField(choices=AnalysisResult.choices, allow_blank=True)
    analysis = serializers.DictField()


class RolloutOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Rollout"

    id = serializers.IntegerField()
    model = serializers.CharField(source="model.slug")
    version = serializers.CharField(source="version.version")
    target = serializers.ChoiceField(choices=Target.choices)
    stable_version = serializers.CharField(source="stable_version.version")
    backend = serializers.CharField()
    state = serializers.ChoiceField(choices=RolloutState.choices)
    weight = serializers.IntegerField(help_text="The canary's share of traffic, in percent.")
    synced = serializers.BooleanField(help_text="Whether the backend serves this state yet.")
    strategy = serializers.DictField()
    outcome = serializers.CharField()
    external_ref = serializers.CharField()
    attestation = serializers.CharField(help_text="The gate's attestation it started from.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    steps = StepOutputSerializer(many=True, source="step_records.all")
    url = serializers.SerializerMethodField()

    def get_url(self, rollout: Rollout) -> str:
        return reverse("api-rollout-detail", kwargs={"pk": rollout.pk})


def _raise_refused(request: Request, refused: RolloutRefused) -> None:
    """The service's refusal as the API's answer. The service counted it through
    portal.security already: the refusal middleware is told not to count it again."""
    if refused.code in ("active", "no_gate", "forbidden"):
        # DRF wraps the Django request; the middleware reads the Django one.
        request._request.refusals_recorded_by_view = True
    if refused.code == "active":
        raise Conflict(refused.message_text) from None
    if refused.code == "state":
        raise Conflict(refused.message_text, extra={"state": refused.state}) from None
    if refused.code in ("no_gate", "forbidden"):
        raise PermissionDenied(refused.message_text) from None
    raise ValidationError({"version": refused.message_text}) from None


class RolloutStartApi(APIView):
    """Start a canary rollout of an approved version; a worker drives it."""

    required_scopes = (Scope.ROLLOUTS_WRITE,)
    required_roles = ROLLOUT_OPERATORS

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RolloutStart"

        model = serializers.SlugField(
            max_length=64, help_text="The model's slug, e.g. demand-forecasting."
        )
        version = serializers.CharField(max_length=64, help_text="e.g. 2.1.0")
        target = serializers.ChoiceField(choices=Target.choices)

    @extend_schema(
        operation_id="rollouts_start",
        request=InputSerializer,
        responses={
            201: OpenApiResponse(RolloutOutputSerializer, description="Started."),
            400: error_response("A field is missing or malformed."),
            403: error_response("No approval, missing scope or role."),
            409: error_response("A rollout to the target is active."),
        },
        tags=["rollouts"],
    )
    def post(self, request: Request) -> Response:
        data = input_validated(self.InputSerializer, request)
        version = (
            ModelVersion.objects.select_related("model")
            .filter(model__slug=data["model"], version=data["version"])
            .first()
        )
        if version is None:
            raise ValidationError(
                {"version": f"No version {data['version']!r} of {data['model']!r}."}
            )
        try:
            rollout = rollout_start(
                version=version,
                target=data["target"],
                actor=actor_for_request(request),
                allowed=may_operate_rollouts(request.user),
                client_ip=client_ip_for_request(request),
            )
        except RolloutRefused as refused:
            _raise_refused(request, refused)
        body = RolloutOutputSerializer(rollout_get(pk=rollout.pk)).data
        return created_response(body)


class RolloutDetailApi(APIView):
    """One rollout: state, weight, steps with their analysis."""

    required_scopes = (Scope.ROLLOUTS_READ,)
    required_roles = REGISTRY_READERS

    @extend_schema(
        operation_id="rollouts_get",
        responses={
            200: RolloutOutputSerializer,
            404: error_response("No such rollout."),
        },
        tags=["rollouts"],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(RolloutOutputSerializer(rollout_get(pk=pk)).data)


class RolloutRollbackApi(APIView):
    """Send all traffic back to the stable version and end the rollout."""

    required_scopes = (Scope.ROLLOUTS_WRITE,)
    required_roles = ROLLOUT_OPERATORS

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RolloutRollback"

        reason = serializers.CharField(max_length=300, help_text="Why it is rolled back.")

    @extend_schema(
        operation_id="rollouts_rollback",
        request=InputSerializer,
        responses={
            200: RolloutOutputSerializer,
            400: error_response("No reason given."),
            403: error_response("Missing scope or role."),
            404: error_response("No such rollout."),
            409: error_response("The rollout has ended; `state` names its state."),
        },
        tags=["rollouts"],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = input_validated(self.InputSerializer, request)
        rollout = rollout_get(pk=pk)
        try:
            rollout_rollback(
                rollout=rollout,
                actor=actor_for_request(request),
                allowed=may_operate_rollouts(request.user),
                client_ip=client_ip_for_request(request),
                reason=data["reason"],
            )
        except RolloutRefused as refused:
            _raise_refused(request, refused)
        return Response(RolloutOutputSerializer(rollout_get(pk=pk)).data)
