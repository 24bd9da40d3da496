"""Sign-in events into the audit ledger.

Django and axes announce sign-ins through signals; these receivers only record.
The attempted username is stored as a digest: a failed attempt may carry anything.
"""

import hashlib
from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from portal.audit.actors import Actor, client_ip_for_request
from portal.audit.services import audit_record


def _username_digest(username: str) -> str:
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:16]


@receiver(user_logged_in)
def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    backend = getattr(user, "backend", "") or ""
    audit_record(
        action="login.succeeded",
        actor=user.audit_actor(),
        object_type="user",
        object_id=user.pk,
        payload={"method": "google-sso" if "OAuth2" in backend else "password"},
        client_ip=client_ip_for_request(request) if request is not None else None,
    )


@receiver(user_logged_out)
def record_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    audit_record(
        action="logout",
        actor=user.audit_actor(),
        object_type="user",
        object_id=user.pk,
        client_ip=client_ip_for_request(request) if request is not None else None,
    )


@receiver(user_login_failed)
def record_login_failure(
    sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username") or credentials.get("email") or "")
    audit_record(
        action="login.failed",
        actor=Actor.anonymous(),
        object_type="login",
        object_id=_username_digest(username),
        payload={"username_digest": _username_digest(username)},
        client_ip=client_ip_for_request(request) if request is not None else None,
    )


@receiver(user_locked_out)
def record_lockout(
    sender: Any,
    request: HttpRequest | None,
    username: str | None,
    ip_address: str | None,
    **kwargs: Any,
) -> None:
    audit_record(
        action="login.locked_out",
        actor=Actor.anonymous(),
        object_type="login",
        object_id=_username_digest(username or ""),
        payload={"username_digest": _username_digest(username or "")},
        client_ip=ip_address,
    )
