"""The API's refusals in the OpenAPI schema, so the schema says what the API does.

Every refusal has one body, the `Error` component: {"error": "...", "fields": {...}}
(portal.api.exceptions). Views name their own 400, 404 and 409 with `error_response`;
the refusals every authenticated operation can give, 401 (no credentials, or a token
that is unknown, expired or revoked) and 403 (a scope or role missing), are added to
each such operation by `auth_refusals_add`, a drf-spectacular postprocessing hook.
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ERROR_COMPONENT = "Error"

ERROR = inline_serializer(
    name=ERROR_COMPONENT,
    fields={
        "error": serializers.CharField(help_text="What went wrong, in a sentence."),
        "fields": serializers.DictField(
            child=serializers.JSONField(),
            help_text="Field or parameter name to its problems; empty when none is at fault.",
        ),
    },
)

AUTH_REFUSALS = {
    "401": "No credentials, or a token that is unknown, expired or revoked.",
    "403": "The token lacks a scope this operation needs, or its owner a role.",
}


def error_response(description: str) -> OpenApiResponse:
    """A refusal with the `Error` body, for a view's `extend_schema(responses=...)`."""
    return OpenApiResponse(ERROR, description=description)


def auth_refusals_add(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Postprocessing hook: each operation that asks for credentials documents 401 and
    403 with the `Error` body, unless the view described that status itself."""
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    # Every API module uses ERROR, so the component is there; this keeps the reference
    # valid for a schema generated from a subset of the views.
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        ERROR_COMPONENT,
        {
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {}},
            },
            "required": ["error", "fields"],
        },
    )
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or not operation.get("security"):
                continue
            if all(not requirement for requirement in operation["security"]):
                continue  # `auth=[]`, or only the anonymous alternative: public
            responses = operation.setdefault("responses", {})
            for status, description in AUTH_REFUSALS.items():
                responses.setdefault(
                    status,
                    {
                        "content": {"application/json": {"schema": reference}},
                        "description": description,
                    },
                )
    return result
