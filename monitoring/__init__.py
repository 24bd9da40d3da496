"""Prometheus metrics per model, dashboards, thresholds, Alertmanager intake, incidents."""
