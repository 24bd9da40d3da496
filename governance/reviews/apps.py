from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "governance.reviews"
    label = "reviews"
    verbose_name = "Review board"

    def ready(self) -> None:
        # Loosening a policy waits for a second admin: say how an approved one applies.
        from governance.reviews.policy_changes import (
            POLICY_OVERRIDE_DELETE_KIND,
            POLICY_UPDATE_KIND,
        )
        from governance.reviews.services.policies import (
            policy_change_apply,
            policy_override_delete_apply,
        )
        from portal.changes.registry import ChangeKind, change_kind_register

        change_kind_register(
            ChangeKind(
                name=POLICY_UPDATE_KIND, label="Looser review policy", apply=policy_change_apply
            )
        )
        change_kind_register(
            ChangeKind(
                name=POLICY_OVERRIDE_DELETE_KIND,
                label="Removal of a stricter model policy",
                apply=policy_override_delete_apply,
            )
        )
