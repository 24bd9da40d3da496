"""Who did something, as the ledger records it: a pseudonymous id, never a name."""

import ipaddress
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.http import HttpRequest

from portal.audit.choices import ActorType


@dataclass(frozen=True)
class Actor:
    type: str
    id: str = ""

    @classmethod
    def system(cls, component: str) -> "Actor":
        return cls(ActorType.SYSTEM, component)

    @classmethod
    def anonymous(cls) -> "Actor":
        return cls(ActorType.ANONYMOUS, "")

    @classmethod
    def from_ref(cls, ref: str, *, default: "Actor") -> "Actor":
        """The actor a `ref` string names (`default` for an empty one)."""
        kind, _, ident = ref.partition(":")
        return cls(kind, ident) if kind else default

    @property
    def ref(self) -> str:
        """`type:id` (or the type alone), as rows that remember who asked store it."""
        return f"{self.type}:{self.id}" if self.id else str(self.type)


class HasAuditActor(Protocol):
    def audit_actor(self) -> Actor: ...


def actor_for_request(request: HttpRequest) -> Actor:
    """The token behind an API call, else the signed-in user, else anonymous."""
    auth = getattr(request, "auth", None)
    if auth is not None and hasattr(auth, "audit_actor"):
        return auth.audit_actor()
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and hasattr(user, "audit_actor"):
        return user.audit_actor()
    return Actor.anonymous()


def client_ip_for_request(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the one the trusted proxies in front of us saw.

    The portal's one reading of a client address (audit trail, sign-in lockouts, rate
    limits). Each of TRUSTED_PROXY_COUNT load balancers appends the address it received
    from to X-Forwarded-For, so the client is that many hops from the right; anything
    further left is whatever the client chose to send and is never trusted.
    """
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies and _is_ip(hops[-proxies]):
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
