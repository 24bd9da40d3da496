"""Adapters to outside systems training runs use, built from settings."""

from typing import TYPE_CHECKING

from django.conf import settings

from governance.clients import vertex_credentials
from worker.backends.vertex_pipelines import VertexPipelines

if TYPE_CHECKING:
    from pipelines.sources import SourceEndpoints


def vertex_pipelines() -> VertexPipelines:
    """The Vertex AI Pipelines adapter of the configured project and region."""
    return VertexPipelines(
        settings.GOOGLE_CLOUD_PROJECT,
        settings.GOOGLE_CLOUD_REGION,
        api_endpoint=settings.VERTEX_API_ENDPOINT or None,
        credentials=vertex_credentials(),
    )


def import_endpoints() -> "SourceEndpoints":
    """Where imports reach Cloud Storage and BigQuery (Google's own when unset)."""
    from pipelines.sources import SourceEndpoints  # -- slow

    return SourceEndpoints(
        gcs=settings.GCS_API_ENDPOINT,
        bigquery=settings.BIGQUERY_API_ENDPOINT,
        bigquery_project=settings.BIGQUERY_PROJECT,
    )
