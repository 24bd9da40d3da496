from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "governance.rollouts"
    label = "rollouts"
    verbose_name = "Rollouts"
