"""Writes for training runs, one module per job: the run lifecycle (`runs`), one attempt
at a run with the steps both runners share (`attempt`), the local and Vertex AI runners
(`local`, `vertex`), the retraining decision (`retraining`) and the schedules
(`schedules`). Imports point down that list's reverse: runs -> local, vertex ->
retraining -> attempt. The public names are re-exported here."""

from governance.training.services.attempt import (
    PIPELINE_ACTOR,
    RegistrationRefused,
    RunAttempt,
    RunStopped,
    code_version_for,
)
from governance.training.services.imports import (
    import_source_check,
    lake_import_run,
    lake_import_start,
)
from governance.training.services.local import LocalRunAttempt
from governance.training.services.retraining import (
    production_metrics,
    retrain_tolerance,
    retraining_decide,
)
from governance.training.services.runs import (
    RunAlreadyActive,
    params_clean,
    run_cancel,
    run_execute,
    run_start,
    runs_reap_stale,
)
from governance.training.services.schedules import CRONTAB_FIELDS, schedule_update
from governance.training.services.vertex import (
    POLL_SECONDS,
    VertexRunAttempt,
    vertex_run_poll,
    vertex_run_submit,
)

__all__ = [
    "CRONTAB_FIELDS",
    "PIPELINE_ACTOR",
    "POLL_SECONDS",
    "LocalRunAttempt",
    "RegistrationRefused",
    "RunAlreadyActive",
    "RunAttempt",
    "RunStopped",
    "VertexRunAttempt",
    "code_version_for",
    "import_source_check",
    "lake_import_run",
    "lake_import_start",
    "params_clean",
    "production_metrics",
    "retrain_tolerance",
    "retraining_decide",
    "run_cancel",
    "run_execute",
    "run_start",
    "runs_reap_stale",
    "schedule_update",
    "vertex_run_poll",
    "vertex_run_submit",
]
