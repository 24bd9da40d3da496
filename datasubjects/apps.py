from django.apps import AppConfig


class DataSubjectsConfig(AppConfig):
    name = "datasubjects"
    verbose_name = "Data subjects"
