"""Reading an API request's JSON body through its operation's InputSerializer."""

from typing import Any

from django.core.exceptions import ValidationError
from rest_framework import serializers
from rest_framework.request import Request


def input_validated(serializer_class: type[serializers.Serializer], request: Request) -> Any:
    """The body's validated data; a body that is not a JSON object, or fields that do
    not validate, become a 400 with field errors (portal.api.exceptions)."""
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": "The body must be a JSON object."})
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
