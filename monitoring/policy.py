"""What the portal does about an alert, by policy: a drifting or less accurate model is
retrained; a critical alert tells the review board and DevOps. The alert's labels say
which: `metric` (a catalogue key, set by the generated rules) and `severity`."""

from monitoring.catalogue import CATALOGUE
from monitoring.choices import ActionKind, Panel, Severity

# The catalogue metrics a retraining answers: accuracy and data drift. Latency, errors
# and throughput are the serving side's to fix, not the model's.
RETRAIN_METRICS: frozenset[str] = frozenset(
    entry.key
    for entries in CATALOGUE.values()
    for entry in entries
    if entry.panel in (Panel.ACCURACY, Panel.DRIFT)
)


def actions_for(*, labels: dict[str, str]) -> list[str]:
    """The actions a firing alert with these labels calls for, in the order taken."""
    actions = []
    if labels.get("metric") in RETRAIN_METRICS and labels.get("model"):
        actions.append(ActionKind.RETRAIN)
    if labels.get("severity") == Severity.CRITICAL:
        actions.append(ActionKind.NOTIFY)
    return actions
