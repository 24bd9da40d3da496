"""Who may read monitoring and change its thresholds, in one place."""

from typing import Any

from portal.accounts.choices import Role

# Anyone holding a role reads the dashboards and incidents.
MONITORING_READERS: tuple[str, ...] = tuple(Role.values)
# The people who answer for a model's quality and its operation.
THRESHOLD_EDITORS: tuple[str, ...] = (Role.DATA_SCIENCE_LEAD, Role.DEVOPS)


def may_read_monitoring(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(*MONITORING_READERS))


def may_edit_thresholds(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(*THRESHOLD_EDITORS))


# Who answers an incident: acknowledges it and closes it.
INCIDENT_RESPONDERS: tuple[str, ...] = (Role.DEVOPS, Role.DATA_SCIENCE_LEAD, Role.MODEL_OWNER)


def may_respond_to_incidents(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(*INCIDENT_RESPONDERS))
