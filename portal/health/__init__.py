"""Liveness, readiness and metrics for Kubernetes and Prometheus."""
