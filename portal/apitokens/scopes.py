"""Which scopes the API's endpoints use, and which roles each endpoint asks of a caller.

Read from the views themselves (`required_scopes` and `required_roles`, per method), so
a scope is offered only while an endpoint uses it, and only to an owner whose roles
would let their own session call that endpoint: a token never carries more than its
owner may do. The URL map is read at run time, not imported, so the base of the portal
still imports no app.
"""

from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace

from django.urls import URLPattern, URLResolver, get_resolver

from portal.apitokens.choices import Scope

_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class EndpointRule:
    """One API route and method: the scopes a token needs, the roles its owner needs."""

    route: str
    method: str
    scopes: tuple[str, ...]
    roles: tuple[str, ...]


def _walk(patterns: list, prefix: str = "") -> list[tuple[str, type]]:
    found: list[tuple[str, type]] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            view_class = getattr(pattern.callback, "view_class", None)
            if view_class is not None:
                found.append((prefix + str(pattern.pattern), view_class))
    return found


@cache
def endpoint_rules() -> tuple[EndpointRule, ...]:
    """Every (route, method) of a view that declares `required_scopes`."""
    rules = []
    for route, view_class in _walk(get_resolver().url_patterns):
        for method in _METHODS:
            if not hasattr(view_class, method):
                continue
            view = view_class()
            # Views may choose their scopes by method (a property reading the request).
            view.request = SimpleNamespace(method=method.upper())
            scopes = tuple(getattr(view, "required_scopes", ()))
            if scopes:
                roles = tuple(getattr(view, "required_roles", ()))
                rules.append(EndpointRule(route, method.upper(), scopes, roles))
    return tuple(rules)


def scopes_in_use() -> list[str]:
    """The scopes some endpoint requires, in the order of `Scope`."""
    used = {scope for rule in endpoint_rules() for scope in rule.scopes}
    return [scope for scope in Scope.values if scope in used]


def scopes_allowed_for(roles: frozenset[str] | set[str]) -> list[str]:
    """The scopes in use that an owner holding `roles` may put on a token: those of an
    endpoint whose role check the owner's session would pass."""
    if not roles:
        return []
    allowed = {
        scope
        for rule in endpoint_rules()
        if not rule.roles or set(rule.roles) & set(roles)
        for scope in rule.scopes
    }
    return [scope for scope in scopes_in_use() if scope in allowed]
