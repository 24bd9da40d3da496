"""Who may read and change the registry and its model cards, in one place."""

from typing import Any

from governance.models import RegisteredModel
from portal.accounts.choices import Role

# Anyone holding a role may read the registry; a signed-in person without one sees nothing.
REGISTRY_READERS: tuple[str, ...] = tuple(Role.values)
# People (not machines) who may register a version through the API with their session.
REGISTRY_WRITERS: tuple[str, ...] = (Role.DATA_SCIENCE_LEAD, Role.MODEL_OWNER)


def may_read_registry(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(*REGISTRY_READERS))


def may_edit_card(user: Any, model: RegisteredModel) -> bool:
    """Data science leads edit every card; a model owner edits the cards of the models
    they own (or of a model nobody owns yet). Everyone else reads."""
    if not user.is_authenticated:
        return False
    if user.has_role(Role.DATA_SCIENCE_LEAD):
        return True
    if user.has_role(Role.MODEL_OWNER):
        return model.owner_id is None or model.owner_id == user.pk
    return False
