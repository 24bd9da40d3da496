from typing import Any

from rest_framework.permissions import BasePermission

from portal.apitokens.models import ApiToken


class HasRequiredScopes(BasePermission):
    """What a caller may do on an API view.

    A signed-in person (session) needs one of the view's `required_roles`. A token
    needs every scope the view lists in `required_scopes` and, on top, its owner must
    pass the same role check as their own session would, now: a token never does what
    its owner may not. A token whose owner holds no role at all does nothing. Object
    rights (whose model it is) are checked inside the views, for both alike. A view
    that lists neither is open to any authenticated caller.
    """

    message = "This token lacks a required scope."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if isinstance(request.auth, ApiToken):
            if not user.roles:
                self.message = "This token's owner holds no role: the token can do nothing."
                return False
            required = set(getattr(view, "required_scopes", ()))
            if not request.auth.has_scopes(required):
                missing = sorted(required - set(request.auth.scopes))
                self.message = f"This token lacks the scope(s): {', '.join(missing)}."
                return False
        roles = getattr(view, "required_roles", ())
        if roles and not user.has_role(*roles):
            self.message = (
                "The token's owner's roles do not allow this operation."
                if isinstance(request.auth, ApiToken)
                else "Your roles do not allow this operation."
            )
            return False
        return True
