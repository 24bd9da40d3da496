"""`manage.py demo_rollouts` without what it needs: it says so and changes nothing.
(Its full run, a canary rolled back and one completed against the model server and
Prometheus, takes the trained demo models; `make demo` runs it.)"""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from governance.rollouts.models import Rollout

pytestmark = pytest.mark.django_db


def test_demo_rollouts_without_prometheus_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    out = StringIO()
    call_command("demo_rollouts", stdout=out)
    assert "Prometheus is not on the PATH" in out.getvalue()
    assert not Rollout.objects.exists()


def test_demo_rollouts_without_the_demo_data_stops_with_the_command_to_run(tmp_path, monkeypatch):
    """Prometheus is there but no demo users or trained versions: a CommandError that
    names what to run first, and no rollout."""
    fake = tmp_path / "prometheus"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CommandError, match="demo_users"):
        call_command("demo_rollouts")
    assert not Rollout.objects.exists()
