"""Training's panel on the home page: the runs this person started, newest first."""

from typing import Any

from governance.training.models import PipelineRun
from governance.training.permissions import may_start_any_run
from governance.training.selectors import runs_list
from portal.ui.home import HomePanel, home_panel_register


def _mine(user: Any, limit: int) -> list[PipelineRun] | None:
    if not may_start_any_run(user):
        return None
    return list(runs_list().filter(requested_by=user.audit_actor().ref)[:limit])


def register_home_panels() -> None:
    home_panel_register(
        HomePanel(
            name="training.mine",
            title="Your training runs",
            template="training/home_runs.html",
            rows=_mine,
            order=30,
            limit=5,
        )
    )
