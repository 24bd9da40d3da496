"""The one outside system notify talks to: whatever HTTP server an endpoint names."""

from dataclasses import dataclass

import requests

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


def webhook_post(*, url: str, body: bytes, headers: dict[str, str]) -> WebhookResponse:
    """POST `body` to `url`; never raises for network trouble.

    Redirects are not followed: `requests` would turn the POST into a GET, and a
    signed event should reach the URL the admin configured or nowhere.
    """
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
