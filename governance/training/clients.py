"""Adapters to outside systems training runs use, built from settings."""

from django.conf import settings

from governance.clients import vertex_credentials
from worker.backends.vertex_pipelines import VertexPipelines


def vertex_pipelines() -> VertexPipelines:
    """The Vertex AI Pipelines adapter of the configured project and region."""
    return VertexPipelines(
        settings.GOOGLE_CLOUD_PROJECT,
        settings.GOOGLE_CLOUD_REGION,
        api_endpoint=settings.VERTEX_API_ENDPOINT or None,
        credentials=vertex_credentials(),
    )
