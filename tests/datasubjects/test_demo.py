"""The demo's data subjects: sources registered, a CRM built, a sample request queued."""

import pytest
from django.core.management import call_command

from datasubjects.models import ConsentRecord, DataSource, DataSubjectRequest
from datasubjects.services import data_source_check
from portal.accounts.choices import Role

# Transactional: the command runs in autocommit, as on the command line, so the code
# e-mail is sent when the request commits.
pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_datasubjects_registers_sources_and_queues_a_request(
    settings, tmp_path, sample_lake, make_user, capsys
):
    """Run twice: four working sources, a consent ledger, one verified sample access
    request, and the address to use on the public form printed."""
    root, customers = sample_lake
    settings.PIPELINES_LAKE_ROOT = str(root)
    settings.VAR_DIR = tmp_path
    settings.MONITORING_PREDICTION_LOG_DIR = tmp_path / "predictions"
    make_user(Role.PORTAL_ADMIN, email="admin@zeromargin.example")
    call_command("demo_datasubjects")
    call_command("demo_datasubjects")
    assert sorted(DataSource.objects.values_list("slug", flat=True)) == [
        "crm",
        "lake",
        "portal",
        "predictions",
    ]
    # The sign-up consents of the first ten customers, three purposes each, once.
    assert ConsentRecord.objects.count() == 30
    assert all(data_source_check(source=s).ok for s in DataSource.objects.all())
    sample = DataSubjectRequest.objects.get()
    assert (sample.email, sample.state) == (customers.iloc[1]["email"], "pending")
    assert customers.iloc[0]["email"] in capsys.readouterr().out
