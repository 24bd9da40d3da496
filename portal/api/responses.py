"""Answers the API's views share."""

from typing import Any

from rest_framework import status
from rest_framework.response import Response


def created_response(body: dict[str, Any]) -> Response:
    """201 Created with the new resource's representation, and `Location` its `url`
    (every output serializer of a created resource has one)."""
    return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})
