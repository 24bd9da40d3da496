"""Celery tasks of the governance app: thin wrappers around its services."""

import logging

from celery import shared_task

from governance.clients import registry_sync_enabled, vertex_registry
from governance.models import ModelVersion
from governance.services.registry_sync import registry_alias_push, registry_sync
from portal.audit.actors import Actor
from worker.backends.vertex_common import VertexError

logger = logging.getLogger(__name__)
WORKER = Actor.system("worker")


@shared_task(name="governance.registry_sync")
def sync_registry() -> str:
    """Pull Vertex AI Model Registry into the portal (beat: hourly)."""
    if not registry_sync_enabled():
        return "registry sync is off: no GOOGLE_CLOUD_PROJECT"
    report = registry_sync(registry=vertex_registry(), actor=WORKER)
    logger.info("registry sync: %s", report.summary())
    return report.summary()


@shared_task(
    name="governance.registry_alias_set",
    bind=True,
    max_retries=8,
    acks_late=True,
)
def set_registry_alias(self, version_id: int, target: str) -> bool:
    """Push a promotion's alias to Vertex AI; retried with backoff while it is away."""
    if not registry_sync_enabled():
        return False
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        return False
    try:
        return registry_alias_push(
            version=version, target=target, registry=vertex_registry(), actor=WORKER
        )
    except VertexError as exc:
        if exc.retryable:
            raise self.retry(exc=exc, countdown=min(600, 15 * 2**self.request.retries)) from exc
        logger.error("alias %s for %s refused by Vertex AI: %s", target, version, exc.reason)
        raise
