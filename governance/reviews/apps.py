from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "governance.reviews"
    label = "reviews"
    verbose_name = "Review board"

    def ready(self) -> None:
        # The registry announces changed evidence without knowing the review board.
        from governance.reviews.receivers import evidence_changed_receiver  # noqa: PLC0415 -- ready
        from governance.services.evidence import version_evidence_changed  # noqa: PLC0415 -- ready

        version_evidence_changed.connect(
            evidence_changed_receiver, weak=False, dispatch_uid="reviews.evidence_changed"
        )

        from governance.reviews.evidence import register_evidence_pack  # noqa: PLC0415 -- ready
        from governance.reviews.timeline import version_reviews  # noqa: PLC0415 -- ready
        from portal.audit.timeline import timeline_related_register  # noqa: PLC0415 -- ready

        timeline_related_register("model_version", version_reviews)
        register_evidence_pack()

        from governance.reviews.home import register_home_panels  # noqa: PLC0415 -- ready

        register_home_panels()

        # Loosening a policy waits for a second admin: say how an approved one applies.
        from governance.reviews.policy_changes import (  # noqa: PLC0415 -- ready
            POLICY_OVERRIDE_DELETE_KIND,
            POLICY_UPDATE_KIND,
        )
        from governance.reviews.services.policies import (  # noqa: PLC0415 -- ready
            policy_change_apply,
            policy_override_delete_apply,
        )
        from portal.changes.registry import ChangeKind, change_kind_register  # noqa: PLC0415 -- ready

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
