"""Factories of rollouts: records in a given state with their steps, for the pages.

Rollouts that really run (gate, backend, Prometheus) are started through
`rollout_start` in the tests that need them; these build the rows a page shows.
"""

import factory
from django.utils import timezone

from governance.choices import Target
from governance.rollouts.choices import AnalysisResult, RolloutState
from governance.rollouts.models import Rollout, RolloutStep
from tests.factories.registry import ModelVersionFactory

STEPS = [10, 50, 100]


def measures(*, stable_errors: float = 0.0, canary_errors: float = 0.0) -> dict:
    """An analysis's measures as canary_analyse records them."""
    track = {"requests": 120.0, "p95_seconds": 0.012, "p99_seconds": 0.02, "prediction_mean": 3.1}
    return {
        "stable": {**track, "error_rate": stable_errors},
        "canary": {**track, "error_rate": canary_errors, "prediction_shift": 0.0},
    }


class RolloutFactory(factory.django.DjangoModelFactory):
    """A rollout at `step_index` with its step records; `analysed` steps before the
    current one passed their analysis."""

    class Meta:
        model = Rollout
        skip_postgeneration_save = True

    version = factory.SubFactory(ModelVersionFactory)
    model = factory.LazyAttribute(lambda o: o.version.model)
    stable_version = factory.LazyAttribute(
        lambda o: ModelVersionFactory(
            model=o.version.model, version_minor=o.version.version_minor + 100
        )
    )
    target = Target.CANARY
    backend = "local"
    strategy = factory.LazyFunction(
        lambda: {"steps": list(STEPS), "bake_seconds": 60, "thresholds": {"min_requests": 20}}
    )
    state = RolloutState.PROGRESSING
    step_index = 0
    weight = factory.LazyAttribute(lambda o: STEPS[o.step_index])
    synced = True
    requested_by = "user:1"
    step_started_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def steps(self, create: bool, extracted: object, **kwargs: object) -> None:
        if not create:
            return
        now = timezone.now()
        for index in range(self.step_index + 1):
            done = index < self.step_index
            RolloutStep.objects.create(
                rollout=self,
                index=index,
                weight=STEPS[index],
                started_at=now,
                analysed_at=now if done else None,
                result=AnalysisResult.PASS if done else "",
                analysis=(
                    {
                        "result": "pass",
                        "reasons": ["canary within the thresholds"],
                        "measures": measures(),
                    }
                    if done
                    else {}
                ),
            )
