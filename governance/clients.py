"""Adapters to outside systems the governance app uses, built from settings."""

from django.conf import settings
from google.auth.credentials import AnonymousCredentials

from worker.backends.vertex_registry import VertexModelRegistry


def registry_sync_enabled() -> bool:
    """The Vertex AI Model Registry sync runs only with a Google project configured."""
    return bool(settings.GOOGLE_CLOUD_PROJECT)


def vertex_registry() -> VertexModelRegistry:
    return VertexModelRegistry(
        settings.GOOGLE_CLOUD_PROJECT,
        settings.GOOGLE_CLOUD_REGION,
        api_endpoint=settings.VERTEX_API_ENDPOINT or None,
        credentials=vertex_credentials(),
    )


def vertex_credentials() -> object | None:
    # Only a stand-in endpoint (tests, local emulators) runs without Google credentials;
    # otherwise the client library finds the workload identity itself.
    if settings.VERTEX_API_ENDPOINT.startswith("http://"):
        return AnonymousCredentials()
    return None
