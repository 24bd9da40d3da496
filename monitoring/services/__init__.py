"""Writes for monitoring (re-exported): thresholds and drift records (`records`), the
training references and the evaluation of served windows (`windows`)."""

from monitoring.services.records import drift_compute, drift_record, threshold_set
from monitoring.services.windows import (
    WindowReport,
    drift_reference_store,
    quality_record,
    window_evaluate,
    window_latest,
)

__all__ = [
    "WindowReport",
    "drift_compute",
    "drift_record",
    "drift_reference_store",
    "quality_record",
    "threshold_set",
    "window_evaluate",
    "window_latest",
]
