"""The beat schedule, in one place. Task names are `<app>.<verb>`."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict] = {
    "audit-verify-chain-nightly": {
        "task": "audit.verify_chain",
        "schedule": crontab(hour=2, minute=17),
    },
    "audit-export-ledger": {
        "task": "audit.export_ledger",
        "schedule": crontab(minute="*"),
    },
    "audit-checkpoint-hourly": {
        "task": "audit.checkpoint",
        "schedule": crontab(minute=7),
    },
    "governance-registry-sync-hourly": {
        "task": "governance.registry_sync",
        "schedule": crontab(minute=41),
    },
    "reviews-expire": {
        "task": "reviews.expire",
        "schedule": crontab(minute="*/10"),
    },
    "training-reap-stale-runs": {
        "task": "training.reap_stale_runs",
        "schedule": crontab(minute="*/5"),
    },
    "notify-requeue-due": {
        "task": "notify.requeue_due",
        "schedule": crontab(minute="*"),
    },
    "rollouts-sweep": {
        "task": "rollouts.sweep",
        "schedule": crontab(minute="*"),
    },
    "changes-expire-and-check-configuration": {
        "task": "changes.expire",
        "schedule": crontab(minute="*/5"),
    },
    "reviews-clouddeploy-sweep": {
        "task": "reviews.clouddeploy_sweep",
        "schedule": crontab(minute="*/15"),
    },
    "exports-expire": {
        "task": "exports.expire",
        "schedule": crontab(minute=23),
    },
    # An image running without the board's approval is seen within this interval.
    "monitoring-reconcile-deployments": {
        "task": "monitoring.reconcile_deployments",
        "schedule": crontab(minute="*/5"),
    },
    "datasubjects-deadlines": {
        "task": "datasubjects.deadlines_sweep",
        "schedule": crontab(minute=7),
    },
    "monitoring-evaluate-windows": {
        "task": "monitoring.evaluate_windows",
        "schedule": crontab(minute="*/5"),
    },
}
