from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "portal.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        from portal.accounts import (  # noqa: PLC0415 -- ready
            receivers,  # noqa: F401  (connects auth signals)
            services,  # noqa: F401  (registers the role-grant change kind)
        )
