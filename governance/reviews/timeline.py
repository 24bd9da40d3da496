"""A model version's reviews (and so their decisions and gate answers) belong to its life."""

from governance.reviews.models import Review


def version_reviews(object_id: str) -> list[tuple[str, str]]:
    """("review", pk) of every review of the version the ledger names `slug@version`."""
    slug, _, version = object_id.partition("@")
    reviews = Review.objects.filter(version__model__slug=slug, version__version=version)
    return [("review", str(pk)) for pk in reviews.values_list("pk", flat=True)]
