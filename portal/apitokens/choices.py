from django.db import models


class Scope(models.TextChoices):
    """Every scope a token may name. Only those an endpoint requires are offered
    (portal.apitokens.scopes)."""

    REGISTRY_READ = "registry:read", "Read models, versions and cards"
    REGISTRY_WRITE = "registry:write", "Register model versions"
    REVIEWS_READ = "reviews:read", "Read reviews"
    REVIEWS_WRITE = "reviews:write", "Open reviews"
    GATES_READ = "gates:read", "Ask deployment gates"
    PIPELINES_READ = "pipelines:read", "Read training runs"
    PIPELINES_WRITE = "pipelines:write", "Start training runs"
    ROLLOUTS_READ = "rollouts:read", "Read rollouts"
    ROLLOUTS_WRITE = "rollouts:write", "Start and roll back rollouts"
    AUDIT_READ = "audit:read", "Read the audit trail"
