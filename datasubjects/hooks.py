"""What the data subjects app tells governance through the hooks governance offers
(registered in DataSubjectsConfig.ready()): the suppression list a training run hands
its pipeline, and the flags on a model version's page."""

from pathlib import Path

from django.urls import reverse

from datasubjects.selectors import versions_trained_on_subjects
from datasubjects.services.suppression import suppression_list_write
from governance.models import ModelVersion
from governance.selectors.data_subjects import VersionSubjectFlag


def training_suppression_list_write(*, purpose: str) -> Path:
    """Write the suppression list for a training run (governance's hook)."""
    return suppression_list_write(purpose=purpose)


def version_erasure_flags(*, version: ModelVersion) -> list[VersionSubjectFlag]:
    """One flag per erasure request whose person was in this version's training
    snapshot (pseudonymous: the request's public id and a row count)."""
    return [
        VersionSubjectFlag(
            text=(
                f"Trained on a snapshot ({found.snapshot[:19]}...) that holds {found.rows} "
                f"row(s) of a person whose erasure was requested (request "
                f"{found.request.public_id}). The next training snapshot leaves them out."
            ),
            url=reverse("datasubjects:request_detail", args=[found.request.public_id]),
        )
        for found in versions_trained_on_subjects(version_id=version.pk)
    ]
