from django.apps import AppConfig


class ApiTokensConfig(AppConfig):
    name = "portal.apitokens"
    label = "apitokens"
    verbose_name = "API tokens"

    def ready(self) -> None:
        from portal.apitokens import schema  # noqa: F401, PLC0415 -- ready (registers the OpenAPI scheme)
