"""Monitoring's panel on the home page: incidents not yet closed, newest first."""

from typing import Any

from monitoring.choices import IncidentStatus
from monitoring.models import Incident
from monitoring.permissions import may_read_monitoring
from monitoring.selectors import incidents_list
from portal.ui.home import HomePanel, home_panel_register


def _open(user: Any, limit: int) -> list[Incident] | None:
    if not may_read_monitoring(user):
        return None
    return list(incidents_list().exclude(status=IncidentStatus.CLOSED)[:limit])


def register_home_panels() -> None:
    home_panel_register(
        HomePanel(
            name="monitoring.incidents",
            title="Open incidents",
            template="monitoring/home_incidents.html",
            rows=_open,
            order=40,
        )
    )
