"""Data subjects' panel on the home page: overdue requests, for those who handle them."""

from typing import Any

from django.utils import timezone

from datasubjects.models import DataSubjectRequest
from datasubjects.permissions import may_handle_requests
from datasubjects.selectors import requests_queue
from portal.ui.home import HomePanel, home_panel_register


def _overdue(user: Any, limit: int) -> list[DataSubjectRequest] | None:
    if not may_handle_requests(user):
        return None
    return list(requests_queue().filter(due_on__lt=timezone.localdate())[:limit])


def register_home_panels() -> None:
    home_panel_register(
        HomePanel(
            name="datasubjects.overdue",
            title="Overdue data subject requests",
            template="datasubjects/home_overdue.html",
            rows=_overdue,
            order=50,
        )
    )
