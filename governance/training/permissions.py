"""Who may see and start training runs and edit their schedules, in one place."""

from typing import Any

from governance.models import RegisteredModel
from governance.permissions import may_read_registry
from portal.accounts.choices import Role

# Signed-in people who may start a run through the API with their session (the model
# owner check comes on top, in may_start_run).
RUN_STARTERS: tuple[str, ...] = (Role.DATA_SCIENCE_LEAD, Role.MODEL_OWNER, Role.PORTAL_ADMIN)


def may_read_runs(user: Any) -> bool:
    return may_read_registry(user)


def may_start_any_run(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(*RUN_STARTERS))


def may_start_run(user: Any, model: RegisteredModel) -> bool:
    """Data science leads and portal admins retrain any model; a model owner the models
    they own (or one nobody owns yet)."""
    if not user.is_authenticated:
        return False
    if user.has_role(Role.DATA_SCIENCE_LEAD, Role.PORTAL_ADMIN):
        return True
    if user.has_role(Role.MODEL_OWNER):
        return model.owner_id is None or model.owner_id == user.pk
    return False


def may_manage_schedules(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(Role.PORTAL_ADMIN, Role.DATA_SCIENCE_LEAD))


def may_import_data(user: Any) -> bool:
    """Data science leads (and portal admins) bring the client's data into the lake and
    read the import reports, whose samples may show customer ids."""
    return bool(user.is_authenticated and user.has_role(Role.DATA_SCIENCE_LEAD, Role.PORTAL_ADMIN))
