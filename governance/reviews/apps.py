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
