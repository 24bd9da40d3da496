"""The local runner: a run's steps executed on this machine, on the local data lake."""

import traceback
from typing import Any

from django.conf import settings

from governance.models import ModelVersion
from governance.services.data_subjects import (
    training_suppression_key,
    training_suppression_list,
)
from governance.training.services.attempt import RunAttempt, RunStopped, error_describe
from governance.training.services.retraining import retraining_decide

# The local runner trains with a fixed seed, so a retried attempt trains the same model.
SEED = 0


class LocalRunAttempt(RunAttempt):
    """One attempt at a run on this machine: the pipeline's steps, then the decision."""

    def execute(self) -> None:
        from pipelines import STEPS, RunContext, ValidationFailed, source_data_version  # -- slow

        if self.run.version_id is None:
            ctx = RunContext(
                model_kind=self.run.model.kind,
                lake_root=settings.PIPELINES_LAKE_ROOT,
                artifact_root=settings.PIPELINES_ARTIFACT_ROOT,
                snapshot_id=self.run.snapshot_id or None,
                params=dict(self.run.params),
                seed=SEED,
                run_id=self.run.pipeline_run_ref,
                log=self.log,
                # People who objected, restricted, were erased or withdrew consent are
                # left out of the snapshot this run trains on (GDPR Arts. 17, 18, 21).
                suppression_path=training_suppression_list(
                    purpose=f"training run {self.run.pipeline_run_ref}"
                ),
                suppression_key=training_suppression_key(),
            )
            for step in STEPS:
                self.begin(step.name)
                try:
                    step.run(ctx)
                except RunStopped:
                    raise
                except ValidationFailed as failure:
                    problems = [str(p) for p in failure.problems]
                    shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
                    self.fail(
                        step.name,
                        f"Failed: the data did not pass validation ({len(problems)} "
                        f"problem{'s' if len(problems) != 1 else ''}): {shown}",
                        problems,
                    )
                    return
                except Exception as error:
                    self.log(traceback.format_exc(limit=-3).rstrip())
                    self.fail(step.name, f"Failed in step {step.name}: {error_describe(error)}")
                    return
                if step.name == "snapshot" and not self.run.data_version:
                    # A run started on a named snapshot keeps that id; the source's data
                    # version comes from the snapshot either way.
                    version = source_data_version(ctx.snapshot.source, ctx.snapshot.id)[:1000]
                    self.run.snapshot_id = self.run.snapshot_id or ctx.snapshot.id
                    self.run.data_version = version
                    self._owned().update(snapshot_id=self.run.snapshot_id, data_version=version)
                self.end(step.name)
            self.begin("register")
            try:
                self.register(ctx.result)
            except RunStopped:
                raise
            except Exception as error:
                self.log(traceback.format_exc(limit=-3).rstrip())
                self.fail("register", f"Failed to register the version: {error_describe(error)}")
                return
            self.end("register")
        self.begin("compare")
        try:
            retraining_decide(attempt=self)
        except RunStopped:
            raise
        except Exception as error:
            self.log(traceback.format_exc(limit=-3).rstrip())
            self.fail("compare", f"Failed to compare with production: {error_describe(error)}")

    def lineage_note(self, version: ModelVersion, result: Any) -> str:
        return (
            f"Lineage: trained by the portal's local runner, pipeline run "
            f"#{self.run.pk} (`{self.run.pipeline_run_ref}`), seed {result.seed}, code "
            f"`{version.code_version[:12]}`. There is no container image on the local "
            f"runner: the image digest recorded is the SHA-256 of the model file "
            f"(`{result.artifact_digest[:19]}...`)."
        )
