"""Shared API plumbing: the JSON error format, the schema and docs routes."""
