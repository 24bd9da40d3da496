from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "governance.reviews"
    label = "reviews"
    verbose_name = "Review board"

    def ready(self) -> None:
        from governance.reviews.timeline import version_reviews
        from portal.audit.timeline import timeline_related_register

        timeline_related_register("model_version", version_reviews)
