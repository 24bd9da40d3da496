"""The default review policies: one per target.

Production needs a data science lead, a privacy officer and a devops engineer (three
different people, since each person's decision counts for one role); canary needs a
data science lead and a devops engineer; staging a data science lead. The requester
never approves their own review by default.
"""

from django.db import migrations

DEFAULTS = {
    "staging": {
        "required_roles": {"data_science_lead": 1},
        "review_open_days": 7,
        "approval_valid_days": 30,
        "check_card_complete": False,
        "check_fairness_present": False,
        "check_lineage_complete": True,
        "check_metrics_not_worse": False,
        "check_previous_target": False,
    },
    "canary": {
        "required_roles": {"data_science_lead": 1, "devops": 1},
        "review_open_days": 14,
        "approval_valid_days": 30,
        "check_card_complete": True,
        "check_fairness_present": True,
        "check_lineage_complete": True,
        "check_metrics_not_worse": True,
        "check_previous_target": True,
    },
    "production": {
        "required_roles": {"data_science_lead": 1, "devops": 1, "privacy_officer": 1},
        "review_open_days": 14,
        "approval_valid_days": 14,
        "check_card_complete": True,
        "check_fairness_present": True,
        "check_lineage_complete": True,
        "check_metrics_not_worse": True,
        "check_previous_target": True,
    },
}


def create_defaults(apps, schema_editor):
    ReviewPolicy = apps.get_model("reviews", "ReviewPolicy")
    for target, rules in DEFAULTS.items():
        ReviewPolicy.objects.get_or_create(
            model=None,
            target=target,
            defaults={
                **rules,
                "requester_may_approve": False,
                "metric_tolerance_default": 0.05,
                "metric_tolerances": {},
                "metric_directions": {},
            },
        )


def remove_defaults(apps, schema_editor):
    apps.get_model("reviews", "ReviewPolicy").objects.filter(model=None).delete()


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, remove_defaults)]
