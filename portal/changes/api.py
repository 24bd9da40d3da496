"""Governance change requests over the API, for people signed in as portal admins.

`GET /api/v1/governance/changes` lists them; `POST .../{id}/approve` and
`.../{id}/reject` decide one. API tokens are refused here whatever their scopes: a
token is a machine's credential, and four eyes means two people each deciding.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.choices import Role
from portal.api.inputs import input_validated
from portal.api.schema import ERROR
from portal.apitokens.permissions import HasRequiredScopes
from portal.audit.actors import client_ip_for_request
from portal.changes.choices import ChangeState
from portal.changes.models import ChangeRequest
from portal.changes.selectors import changes_list
from portal.changes.services import change_approve, change_reject


class InPerson(BasePermission):
    """Never an API token, whoever owns it (after the usual checks: HasRequiredScopes
    and the view's `required_roles`)."""

    message = "Governance changes are decided by a portal admin signed in, not by a token."

    def has_permission(self, request: Request, view: object) -> bool:
        return request.auth is None


PERMISSIONS = (HasRequiredScopes, InPerson)


class ChangeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    subject = serializers.SerializerMethodField()
    summary = serializers.CharField()
    before = serializers.JSONField()
    after = serializers.JSONField()
    state = serializers.ChoiceField(choices=ChangeState.choices)
    proposed_by = serializers.CharField(source="proposed_by_actor")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    decided_by = serializers.CharField(source="decided_by_actor")
    decided_at = serializers.DateTimeField(allow_null=True)
    break_glass = serializers.BooleanField()

    def get_subject(self, change: ChangeRequest) -> str:
        return f"{change.subject_type}:{change.subject_id}"


class DecisionInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class ChangeListApi(APIView):
    """Governance change requests, newest first (`?state=pending` for the waiting ones)."""

    permission_classes = PERMISSIONS
    required_roles = (Role.PORTAL_ADMIN,)

    @extend_schema(
        operation_id="governance_changes_list",
        parameters=[OpenApiParameter("state", enum=ChangeState.values, required=False)],
        responses={200: ChangeOutputSerializer(many=True), 400: ERROR, 403: ERROR},
        tags=["governance"],
    )
    def get(self, request: Request) -> Response:
        state = request.query_params.get("state", "")
        if state and state not in ChangeState.values:
            return Response(
                {
                    "error": "Invalid input.",
                    "fields": {"state": [f"One of {', '.join(ChangeState.values)}."]},
                },
                status=400,
            )
        changes = changes_list(state=state)[:200]
        return Response(ChangeOutputSerializer(changes, many=True).data)


class ChangeApproveApi(APIView):
    """Approve a pending change: it applies now. Refused to its proposer and to anyone
    it is about (400 naming why)."""

    permission_classes = PERMISSIONS
    required_roles = (Role.PORTAL_ADMIN,)

    @extend_schema(
        operation_id="governance_changes_approve",
        request=DecisionInputSerializer,
        responses={200: ChangeOutputSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        tags=["governance"],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = input_validated(DecisionInputSerializer, request)
        change = change_approve(
            change=get_object_or_404(ChangeRequest, pk=pk),
            approved_by=request.user,
            reason=data.get("reason", ""),
            client_ip=client_ip_for_request(request),
        )
        return Response(ChangeOutputSerializer(change).data)


class ChangeRejectApi(APIView):
    """Reject a pending change: nothing changes."""

    permission_classes = PERMISSIONS
    required_roles = (Role.PORTAL_ADMIN,)

    @extend_schema(
        operation_id="governance_changes_reject",
        request=DecisionInputSerializer,
        responses={200: ChangeOutputSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        tags=["governance"],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = input_validated(DecisionInputSerializer, request)
        change = change_reject(
            change=get_object_or_404(ChangeRequest, pk=pk),
            rejected_by=request.user,
            actor=request.user.audit_actor(),
            reason=data.get("reason", ""),
            client_ip=client_ip_for_request(request),
        )
        return Response(ChangeOutputSerializer(change).data)
