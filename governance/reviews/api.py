"""Review board API: CI opens reviews and asks the deployment gate.

`POST /api/v1/reviews` (scope reviews:write) opens a review, idempotently;
`GET /api/v1/reviews/{id}` (reviews:read) reads one; `GET /api/v1/gates/{model}/
{version}/{target}` (gates:read) answers 200 with a signed attestation when the version
may deploy, 403 otherwise, so `curl --fail` works as a CI step.
"""

from datetime import datetime, tzinfo

from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.choices import Target
from governance.reviews.choices import ReviewSource, ReviewState
from governance.reviews.gates import gate_attestation
from governance.reviews.models import Review
from governance.reviews.permissions import REVIEW_OPENERS, REVIEW_READERS
from governance.reviews.selectors import gate_answer, missing_roles, review_get
from governance.reviews.services import review_open
from governance.selectors.registry import version_get
from portal.api.inputs import input_validated
from portal.api.responses import created_response
from portal.api.schema import error_response
from portal.apitokens.choices import Scope
from portal.audit.actors import actor_for_request, client_ip_for_request
from portal.changes.configuration import NoApprovedSigningKey

_TARGETS = frozenset(Target.values)


def _when(value: datetime | None, zone: tzinfo) -> str | None:
    """An aware time as the API's DateTimeField writes it (ISO 8601 in `zone`, the
    portal's current time zone, `Z` for UTC), or None. The field's own
    to_representation looks the settings and the time zone up again on every call:
    the gate writes up to five times per answer."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class ReviewOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model = serializers.CharField(source="version.model.slug")
    version = serializers.CharField(source="version.version")
    target = serializers.ChoiceField(choices=Target.choices)
    state = serializers.ChoiceField(choices=ReviewState.choices)
    source = serializers.ChoiceField(choices=ReviewSource.choices)
    external_ref = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by_actor")
    opened_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    required_roles = serializers.DictField(child=serializers.IntegerField())
    missing_roles = serializers.SerializerMethodField()
    checks = serializers.ListField(child=serializers.DictField())
    failed_checks = serializers.ListField(child=serializers.CharField())
    url = serializers.SerializerMethodField()
    gate_url = serializers.SerializerMethodField()

    def get_missing_roles(self, review: Review) -> list[str]:
        approvals = review.decisions.filter(active=True, verdict="approve")
        return missing_roles(required=review.required_roles, approvals=approvals)

    def get_url(self, review: Review) -> str:
        return reverse("api-review-detail", kwargs={"pk": review.pk})

    def get_gate_url(self, review: Review) -> str:
        return reverse(
            "api-gate",
            kwargs={
                "model": review.version.model.slug,
                "version": review.version.version,
                "target": review.target,
            },
        )


class ReviewOpenApi(APIView):
    """Open a review of a version for a target. Idempotent: while a review of that
    version for that target is waiting or approved, it is returned (200)."""

    required_scopes = (Scope.REVIEWS_WRITE,)
    required_roles = REVIEW_OPENERS

    class InputSerializer(serializers.Serializer):
        model = serializers.SlugField(
            max_length=64, help_text="The model's slug, e.g. demand-forecasting."
        )
        version = serializers.CharField(max_length=64, help_text="Semantic version, e.g. 2.1.0.")
        target = serializers.ChoiceField(choices=Target.choices)
        external_ref = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=300,
            help_text="The caller's reference, e.g. the CI build or rollout name.",
        )

    @extend_schema(
        operation_id="reviews_open",
        request=InputSerializer,
        responses={
            201: OpenApiResponse(ReviewOutputSerializer, description="Opened now."),
            200: OpenApiResponse(ReviewOutputSerializer, description="Already open or approved."),
            400: error_response("A field is missing, blank or malformed."),
            404: error_response("No such model or version."),
        },
        tags=["reviews"],
    )
    def post(self, request: Request) -> Response:
        data = input_validated(self.InputSerializer, request)
        version = version_get(model_slug=data["model"], version=data["version"])
        actor = actor_for_request(request)
        review, created = review_open(
            version=version,
            target=data["target"],
            requested_by_actor=actor,
            source=ReviewSource.CI if request.auth is not None else ReviewSource.UI,
            external_ref=data.get("external_ref") or None,
            client_ip=client_ip_for_request(request),
        )
        body = ReviewOutputSerializer(review_get(pk=review.pk)).data
        if created:
            return created_response(body)
        return Response(body, status=status.HTTP_200_OK)


class ReviewDetailApi(APIView):
    """One review: state, the roles still missing, check results."""

    required_scopes = (Scope.REVIEWS_READ,)
    required_roles = REVIEW_READERS

    @extend_schema(
        operation_id="reviews_retrieve",
        responses={200: ReviewOutputSerializer, 404: error_response("No such review.")},
        tags=["reviews"],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ReviewOutputSerializer(review_get(pk=pk)).data)


class GateApi(APIView):
    """May this version deploy to this target? 200 with a signed attestation, or 403
    saying why not (pending, rejected, expired, no_review, discarded)."""

    required_scopes = (Scope.GATES_READ,)
    required_roles = REVIEW_READERS

    class ApprovalSerializer(serializers.Serializer):
        role = serializers.CharField()
        reviewer = serializers.CharField(help_text="Pseudonymous id, e.g. user:12.")
        decided_at = serializers.DateTimeField()

    class AllowedSerializer(serializers.Serializer):
        allowed = serializers.BooleanField()
        review = serializers.IntegerField()
        approvals = serializers.ListField(child=serializers.DictField())
        expires_at = serializers.DateTimeField(help_text="When the approval lapses.")
        attestation = serializers.CharField(help_text="Compact JWS; verify with the JWKS.")
        attestation_expires_at = serializers.DateTimeField(
            help_text="When the attestation stops verifying (ATTESTATION_TTL_MINUTES after "
            "signing, at the latest when the approval lapses): ask the gate again after."
        )

    class RefusedSerializer(serializers.Serializer):
        # The gate's own answer carries every field; a refusal of the caller (a token
        # without gates:read, a person without a role) only the error and fields.
        allowed = serializers.BooleanField(required=False)
        state = serializers.ChoiceField(
            choices=["pending", "rejected", "expired", "no_review", "discarded"], required=False
        )
        review = serializers.IntegerField(allow_null=True, required=False)
        missing_roles = serializers.ListField(child=serializers.CharField(), required=False)
        failed_checks = serializers.ListField(child=serializers.CharField(), required=False)
        expires_at = serializers.DateTimeField(allow_null=True, required=False)
        error = serializers.CharField()
        fields = serializers.DictField()

    @extend_schema(
        operation_id="gates_retrieve",
        responses={
            200: OpenApiResponse(AllowedSerializer, description="May deploy."),
            403: OpenApiResponse(
                RefusedSerializer, description="May not deploy (or the token lacks gates:read)."
            ),
            400: error_response("No such target: staging, canary or production."),
            404: error_response("No such model or version."),
            503: error_response("No approved attestation key to sign with."),
        },
        tags=["reviews"],
    )
    def get(self, request: Request, model: str, version: str, target: str) -> Response:
        if target not in _TARGETS:
            raise ValidationError(
                {"target": f"No target {target!r}: staging, canary or production."}
            )
        answer = gate_answer(model_slug=model, version=version, target=target)
        # The bodies below are built as the serializers above (the documented schema)
        # would give them, without building serializers per request: the gate is the
        # API's busiest read (tests/governance/reviews/test_gate_state.py pins the two
        # as equal).
        zone = timezone.get_current_timezone()
        if answer.allowed:
            try:
                attestation, attestation_expires_at = gate_attestation(answer=answer)
            except NoApprovedSigningKey as exc:
                return Response(
                    {"error": str(exc), "fields": {}}, status=status.HTTP_503_SERVICE_UNAVAILABLE
                )
            return Response(
                {
                    "allowed": True,
                    "review": answer.review_id,
                    "approvals": [
                        {
                            "role": approval["role"],
                            "reviewer": approval["reviewer"],
                            "decided_at": _when(approval["decided_at"], zone),
                        }
                        for approval in answer.approvals
                    ],
                    "expires_at": _when(answer.expires_at, zone),
                    "attestation": attestation,
                    "attestation_expires_at": _when(attestation_expires_at, zone),
                }
            )
        # A "not yet" is the gate's answer, not a refusal of the caller: CI polls it
        # while the board decides, so it is not logged as a warning each time
        # (portal.logfilters.AnswersNotRefusals). A caller refused by the permission
        # (no gates:read) never gets here and is still logged.
        request._request.refusal_is_answer = True  # type: ignore[attr-defined]
        return Response(
            {
                "allowed": False,
                "state": answer.state,
                "review": answer.review_id,
                "missing_roles": list(answer.missing_roles),
                "failed_checks": list(answer.failed_checks),
                "expires_at": _when(answer.expires_at, zone),
                "error": f"{model} {version} may not deploy to {target}: {answer.state}.",
                "fields": {},
            },
            status=status.HTTP_403_FORBIDDEN,
        )
