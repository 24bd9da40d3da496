"""What the home page shows each person: panels the apps register.

The base imports no app, so an app says, in its AppConfig.ready(), what waits for a
person in it (the review board: reviews waiting for their role; training: their runs;
monitoring: open incidents; data subjects: overdue requests). A panel gives its rows
for a person, or None when it is not for them, and names the template that shows them
(with `rows` and `panel` in its context). Rows are fetched with a bounded number of
queries whatever their number: the home page's query count is the panels' sum.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HomePanel:
    name: str  # "<app>.<thing>", unique
    title: str
    template: str
    # Rows for this person (at most `limit`), or None: the panel is not for them.
    rows: Callable[[Any, int], Sequence[Any] | None]
    order: int = 100  # lower first
    limit: int = 10


@dataclass(frozen=True)
class HomePanelShown:
    panel: HomePanel
    rows: Sequence[Any]


_PANELS: dict[str, HomePanel] = {}


def home_panel_register(panel: HomePanel) -> None:
    """Add or replace `panel` (by name): idempotent, as ready() may run more than once."""
    _PANELS[panel.name] = panel


def home_panels_for(user: Any) -> list[HomePanelShown]:
    """The panels meant for `user`, in order, each with its rows (possibly none: the
    panel then says what to do next)."""
    shown = []
    for panel in sorted(_PANELS.values(), key=lambda p: (p.order, p.name)):
        rows = panel.rows(user, panel.limit)
        if rows is not None:
            shown.append(HomePanelShown(panel=panel, rows=list(rows)))
    return shown
