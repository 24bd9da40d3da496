from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "portal.exports"
    label = "exports"
    verbose_name = "Exports"
