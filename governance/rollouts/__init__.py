"""Rollouts: one version of a model shipped to one target as a canary, step by step,
driven by the Celery workers through a backend (the local model server or Cloud Deploy),
analysed from Prometheus, and rolled back when the canary fails."""
