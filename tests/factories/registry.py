"""Factories of the registry: models, and versions with complete evidence.

Versions are built straight from the registry's models, so these tests do not depend
on how registration works; a version's card is complete unless told otherwise.
"""

import hashlib

import factory
from django.utils import timezone

from governance.cards_schema import SECTIONS
from governance.choices import CardSectionKey, LifecycleState, ModelKind
from governance.models import CardSection, ModelCard, ModelVersion, RegisteredModel


def _hex(*parts: object, length: int = 64) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:length]


REGION_SLICES = {
    "north": {"mae": 340.0, "mape": 0.115, "silhouette": 0.41, "hit_rate_at_k": 0.22},
    "south": {"mae": 362.0, "mape": 0.127, "silhouette": 0.39, "hit_rate_at_k": 0.2},
}
FAIRNESS_DATA = {
    "assessments": [
        {
            "groups": "regions north vs south",
            "metric": "MAPE",
            "result": "within 1 point",
            "assessed_by": "data science",
            "assessed_on": "2025-06-01",
        }
    ]
}


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"test-forecaster-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    kind = ModelKind.FORECASTING


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion
        skip_postgeneration_save = True

    model = factory.SubFactory(RegisteredModelFactory)
    version_minor = factory.Sequence(lambda n: n + 1)
    version = factory.LazyAttribute(lambda o: f"1.{o.version_minor}.0")
    version_major = 1
    tag = "forecasting-v1"
    artifact_uri = factory.LazyAttribute(lambda o: f"gs://zm-models/{o.model.slug}/{o.version}")
    image_digest = factory.LazyAttribute(lambda o: f"sha256:{_hex(o.version, 'image')}")
    data_version = factory.LazyAttribute(lambda o: f"bq-snapshot-{_hex(o.version, length=12)}")
    code_version = factory.LazyAttribute(lambda o: _hex(o.version, "code", length=40))
    metrics = factory.LazyFunction(lambda: {"mae": 350.0, "mape": 0.12, "rmse": 480.0})
    # Measured across regions, as the fairness check asks (one metric of each kind).
    metric_slices = factory.LazyFunction(lambda: {"region": dict(REGION_SLICES)})
    state = LifecycleState.REGISTERED
    registered_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def card(self, create: bool, extracted: object, **kwargs: object) -> None:
        """A complete card unless card=False (no card) or card="incomplete"."""
        if not create or extracted is False:
            return
        card = ModelCard.objects.create(version=self)
        sections = []
        for spec in SECTIONS:
            if extracted == "incomplete" and spec.key == CardSectionKey.LIMITATIONS:
                continue
            data = FAIRNESS_DATA if spec.key == CardSectionKey.FAIRNESS_ASSESSMENT else {}
            sections.append(
                CardSection(card=card, key=spec.key, content=f"About {spec.key}.", data=data)
            )
        CardSection.objects.bulk_create(sections)
