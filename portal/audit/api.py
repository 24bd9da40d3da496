"""The audit trail for machines (scope `audit:read`; auditors and portal admins only).

`GET /api/v1/audit/events` pages by sequence: oldest first, `after` the last sequence
seen, so a reader that follows `next` sees every event once even while events are
appended. `GET /api/v1/audit/checkpoint` is the latest signed checkpoint (the file
`audit_verify --checkpoint` takes); the proof endpoints give RFC 9162 inclusion and
consistency proofs against checkpoints.
"""

from urllib.parse import urlencode

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.choices import Role
from portal.api.schema import error_response
from portal.apitokens.choices import Scope
from portal.audit.checkpoints import checkpoint_document
from portal.audit.filters import AuditEventFilter
from portal.audit.models import AuditEvent
from portal.audit.selectors import (
    audit_checkpoint_latest,
    audit_consistency_proof,
    audit_events_all,
    audit_inclusion_proof,
)

AUDIT_READERS = (Role.AUDITOR, Role.PORTAL_ADMIN)
MAX_LIMIT = 500


class AuditEventOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "AuditEvent"

    sequence = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    actor_type = serializers.CharField()
    actor_id = serializers.CharField()
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    payload = serializers.SerializerMethodField()
    redacted = serializers.SerializerMethodField()
    payload_digest = serializers.CharField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()

    def get_payload(self, event: AuditEvent) -> dict | None:
        record = getattr(event, "payload_record", None)
        return record.data if record is not None else None

    def get_redacted(self, event: AuditEvent) -> bool:
        record = getattr(event, "payload_record", None)
        return bool(record and record.redacted_at)


class _PageSerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=100)


class AuditEventListApi(APIView):
    """Events matching the filters, oldest first, `limit` at a time after `after`."""

    required_scopes = (Scope.AUDIT_READ,)
    required_roles = AUDIT_READERS

    @extend_schema(
        operation_id="audit_events_list",
        parameters=[
            OpenApiParameter("after", int, description="Only events with a larger sequence."),
            OpenApiParameter("limit", int, description=f"At most this many (1 to {MAX_LIMIT})."),
            OpenApiParameter("action", str, description="Action prefix, e.g. review."),
            OpenApiParameter("actor", str, description="user:12, token:ab12cd34 or system"),
            OpenApiParameter("object_type", str),
            OpenApiParameter("object_id", str),
            OpenApiParameter("since", str, description="First day (YYYY-MM-DD), UTC."),
            OpenApiParameter("until", str, description="Last day (YYYY-MM-DD), UTC."),
        ],
        responses={
            200: inline_serializer(
                name="AuditEventPage",
                fields={
                    "events": AuditEventOutputSerializer(many=True),
                    "next": serializers.CharField(allow_null=True),
                },
            ),
            400: error_response("A filter is malformed."),
            403: error_response("Missing scope or role."),
        },
        tags=["audit"],
    )
    def get(self, request: Request) -> Response:
        paging = _PageSerializer(data=request.query_params)
        paging.is_valid(raise_exception=True)
        after, limit = paging.validated_data["after"], paging.validated_data["limit"]
        filterset = AuditEventFilter(request.query_params, queryset=audit_events_all())
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        events = list(filterset.qs.filter(sequence__gt=after).order_by("sequence")[: limit + 1])
        next_url = None
        if len(events) > limit:
            events = events[:limit]
            query = request.query_params.copy()
            query["after"] = str(events[-1].sequence)
            next_url = f"{request.path}?{urlencode(sorted(query.items()))}"
        return Response(
            {"events": AuditEventOutputSerializer(events, many=True).data, "next": next_url}
        )


class AuditCheckpointLatestApi(APIView):
    """The latest signed checkpoint, as the file `audit_verify --checkpoint` reads."""

    required_scopes = (Scope.AUDIT_READ,)
    required_roles = AUDIT_READERS

    @extend_schema(
        operation_id="audit_checkpoint_latest",
        responses={
            200: OpenApiResponse(description="The checkpoint document with its signed statement."),
            404: error_response("No checkpoint has been signed yet."),
        },
        tags=["audit"],
    )
    def get(self, request: Request) -> Response:
        checkpoint = audit_checkpoint_latest()
        if checkpoint is None:
            raise NotFound("No checkpoint has been signed yet.")
        return Response(checkpoint_document(checkpoint))


class AuditInclusionProofApi(APIView):
    """The RFC 9162 inclusion proof of one event in the tree of `tree_size` events."""

    required_scopes = (Scope.AUDIT_READ,)
    required_roles = AUDIT_READERS

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AuditInclusionProofQuery"

        sequence = serializers.IntegerField(min_value=1)
        tree_size = serializers.IntegerField(min_value=1)

    @extend_schema(
        operation_id="audit_inclusion_proof",
        parameters=[
            OpenApiParameter("sequence", int, required=True),
            OpenApiParameter("tree_size", int, required=True, description="A checkpoint's size."),
        ],
        responses={
            200: OpenApiResponse(description="leaf_hash, root_hash and proof (hex)."),
            400: error_response("Not an event of a tree of that size."),
        },
        tags=["audit"],
    )
    def get(self, request: Request) -> Response:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            return Response(audit_inclusion_proof(**query.validated_data))
        except ValueError as exc:
            raise ValidationError({"tree_size": str(exc)}) from exc


class AuditConsistencyProofApi(APIView):
    """The RFC 9162 consistency proof between trees of `first` and `second` events."""

    required_scopes = (Scope.AUDIT_READ,)
    required_roles = AUDIT_READERS

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AuditConsistencyProofQuery"

        first = serializers.IntegerField(min_value=1)
        second = serializers.IntegerField(min_value=1)

    @extend_schema(
        operation_id="audit_consistency_proof",
        parameters=[
            OpenApiParameter("first", int, required=True, description="The older size."),
            OpenApiParameter("second", int, required=True, description="The newer size."),
        ],
        responses={
            200: OpenApiResponse(description="first_root, second_root and proof (hex)."),
            400: error_response("Sizes out of order or beyond the ledger."),
        },
        tags=["audit"],
    )
    def get(self, request: Request) -> Response:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        try:
            proof = audit_consistency_proof(first_size=data["first"], second_size=data["second"])
        except ValueError as exc:
            raise ValidationError({"second": str(exc)}) from exc
        return Response(proof)
