"""API tokens for machines: CI pipelines and hooks (Authorization: Bearer <token>)."""
