"""The training run that produced a model version belongs to its life."""

from governance.training.models import PipelineRun


def version_runs(object_id: str) -> list[tuple[str, str]]:
    """("pipeline_run", pk) of the runs that produced the version named `slug@version`."""
    slug, _, version = object_id.partition("@")
    runs = PipelineRun.objects.filter(version__model__slug=slug, version__version=version)
    return [("pipeline_run", str(pk)) for pk in runs.values_list("pk", flat=True)]
