from django.db import models


class Panel(models.TextChoices):
    """Where a metric sits on a model's dashboard, after the client's mock-up: top row
    accuracy and latency, bottom row data drift and anomaly rate."""

    ACCURACY = "accuracy", "Model accuracy"
    LATENCY = "latency", "Inference latency"
    DRIFT = "drift", "Data drift"
    ANOMALY = "anomaly", "Anomaly rate"


class Unit(models.TextChoices):
    SECONDS = "seconds", "seconds"
    PER_SECOND = "per_second", "requests per second"
    SHARE = "share", "share (0 to 1)"
    UNITS = "units", "units sold"
    SCORE = "score", "score"
    RATIO = "ratio", "ratio"


class DriftMethod(models.TextChoices):
    PSI = "psi", "Population stability index"
    JENSEN_SHANNON = "jensenshannon", "Jensen-Shannon distance"
    WASSERSTEIN = "wasserstein", "Normed Wasserstein distance"
    KL = "kl", "Kullback-Leibler divergence"


class DriftVerdict(models.TextChoices):
    NO_DRIFT = "no_drift", "No drift"
    DRIFT = "drift", "Drift"
    NOT_ENOUGH_DATA = "not_enough_data", "Not enough data"


class IncidentStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


class IncidentSource(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Alertmanager"
    RECONCILER = "reconciler", "Deployment reconciler"
    CANARY_ANALYSIS = "canary_analysis", "Canary analysis"


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class TimelineKind(models.TextChoices):
    FIRED = "fired", "Fired"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    ACTION_TAKEN = "action_taken", "Action taken"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


class ActionKind(models.TextChoices):
    RETRAIN = "retrain", "Retraining run"
    ROLLBACK = "rollback", "Rollback"
    NOTIFY = "notify", "Board and DevOps notified"


class ActionOutcome(models.TextChoices):
    TAKEN = "taken", "Taken"
    NOT_TAKEN = "not_taken", "Not taken"
