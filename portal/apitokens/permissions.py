from typing import Any

from rest_framework.permissions import BasePermission

from portal.apitokens.models import ApiToken


class HasRequiredScopes(BasePermission):
    """A token must carry every scope the view lists in `required_scopes`.

    A signed-in person (session) is judged by the view's own role check instead:
    `required_roles`, any of which is enough. A view that lists neither is open to
    any authenticated caller.
    """

    message = "This token lacks a required scope."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if isinstance(request.auth, ApiToken):
            required = set(getattr(view, "required_scopes", ()))
            if not request.auth.has_scopes(required):
                missing = sorted(required - set(request.auth.scopes))
                self.message = f"This token lacks the scope(s): {', '.join(missing)}."
                return False
            return True
        roles = getattr(view, "required_roles", ())
        if roles and not request.user.has_role(*roles):
            self.message = "Your roles do not allow this operation."
            return False
        return True
