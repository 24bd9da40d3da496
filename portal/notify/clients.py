"""The one outside system notify talks to: whatever HTTP server an endpoint names."""

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings

from portal.outbound import private_address_of

TIMEOUT_SECONDS = 10
_ERROR_TEXT_LIMIT = 200

# Errors that no retry can cure: the URL itself is unusable.
_PERMANENT_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)


@dataclass(frozen=True)
class WebhookResponse:
    """What came back from one POST: a status code, or the error that stood in for one."""

    status_code: int | None
    error: str = ""
    permanent_error: bool = False


def webhook_url_refusal(url: str) -> str:
    """Why the portal will not post to `url`, or "" when it may.

    A webhook is a URL an admin typed; without this check it could make the portal
    reach what only the portal can (the cluster's services, the metadata server). Hosts
    resolving to loopback, private, link-local or reserved addresses are refused unless
    listed in WEBHOOK_PRIVATE_HOSTS. A host that does not resolve is left to the POST to
    fail. (A name that changes its answer between this check and the POST can still slip
    through; egress rules in the cluster are the stronger guard.)
    """
    host = urlsplit(url).hostname or ""
    if host in settings.WEBHOOK_PRIVATE_HOSTS:
        return ""
    if address := private_address_of(host):
        return (
            f"{host} resolves to {address}, a private or local address; add it to "
            "WEBHOOK_PRIVATE_HOSTS if it really is a receiver"
        )
    return ""


def webhook_post(*, url: str, body: bytes, headers: dict[str, str]) -> WebhookResponse:
    """POST `body` to `url`; never raises for network trouble.

    Redirects are not followed: `requests` would turn the POST into a GET, and a
    signed event should reach the URL the admin configured or nowhere.
    """
    refusal = webhook_url_refusal(url)
    if refusal:
        return WebhookResponse(None, f"refused: {refusal}"[:500], permanent_error=True)
    try:
        response = requests.post(
            url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
        )
    except _PERMANENT_ERRORS as exc:
        return WebhookResponse(None, f"{type(exc).__name__}: {exc}"[:500], permanent_error=True)
    except requests.RequestException as exc:
        return WebhookResponse(None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= response.status_code < 300:
        return WebhookResponse(response.status_code)
    text = response.text[:_ERROR_TEXT_LIMIT]
    return WebhookResponse(response.status_code, f"HTTP {response.status_code}: {text}")
