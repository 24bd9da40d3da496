from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "governance.training"
    label = "training"
    verbose_name = "Training runs"
