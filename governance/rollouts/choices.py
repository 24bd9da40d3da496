"""States of rollouts and results of canary analysis."""

from django.db import models


class RolloutState(models.TextChoices):
    PENDING = "pending", "Pending"
    PROGRESSING = "progressing", "Progressing"
    PAUSED = "paused", "Paused for a decision"
    SUCCEEDED = "succeeded", "Succeeded"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed"
    ABORTED = "aborted", "Aborted"


# At most one of these per (model, target), a database constraint.
ACTIVE_ROLLOUT_STATES: tuple[str, ...] = (
    RolloutState.PENDING,
    RolloutState.PROGRESSING,
    RolloutState.PAUSED,
)
# The traffic goes back to the stable version in these.
REVERTED_STATES: tuple[str, ...] = (
    RolloutState.ROLLED_BACK,
    RolloutState.FAILED,
    RolloutState.ABORTED,
)


class AnalysisResult(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    # No data, too little traffic or Prometheus not answering: never a pass.
    INCONCLUSIVE = "inconclusive", "Inconclusive"


class RolloutBackendName(models.TextChoices):
    LOCAL = "local", "Local model server"
    CLOUD_DEPLOY = "clouddeploy", "Cloud Deploy"
