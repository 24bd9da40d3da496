"""Secret Manager: one secret version's payload, read with google-cloud-secret-manager.

A training job on Vertex AI has no mounted secrets; it reads what it needs (the
suppression list's hashing key) from Secret Manager as the job's service account,
found by Application Default Credentials. The client talks REST to Google's endpoint,
or to the `http://host:port` the `SECRET_MANAGER_API_ENDPOINT` environment variable
names (a local stand-in). The payload's CRC32C is checked as Google's samples do, so a
corrupted answer is refused rather than used.

The payload is a secret: it appears in no exception, log line or repr here.
"""

import os
import re
from typing import Any

ENDPOINT_VARIABLE = "SECRET_MANAGER_API_ENDPOINT"
DEFAULT_TIMEOUT_SECONDS = 30.0
# A version of a global secret, or of a regional one (`locations/L/`, served by the
# region's own endpoint); `latest` is an alias Secret Manager resolves.
SECRET_VERSION = re.compile(
    r"^projects/[^/]+/(?:locations/(?P<location>[^/]+)/)?secrets/[^/]+/versions/[^/]+\Z"
)
VERSION_NAME_SHAPES = (
    "projects/P/secrets/S/versions/V or projects/P/locations/L/secrets/S/versions/V"
)
REGIONAL_ENDPOINT = "secretmanager.{location}.rep.googleapis.com"
ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"


class SecretUnavailable(RuntimeError):
    """The secret version could not be read, or its payload failed its checksum; the
    message names the version and the reason (never the payload)."""


def secret_manager_endpoint(name: str) -> str | None:
    """The endpoint to ask for secret version `name`: SECRET_MANAGER_API_ENDPOINT when
    set, else a regional secret's region endpoint, else None (the client's global
    default, secretmanager.googleapis.com)."""
    if configured := os.environ.get(ENDPOINT_VARIABLE):
        return configured
    shape = SECRET_VERSION.match(name)
    if shape and shape["location"]:
        return REGIONAL_ENDPOINT.format(location=shape["location"])
    return None


def secret_version_access(
    name: str,
    *,
    api_endpoint: str | None = None,
    credentials: Any = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> bytes:
    """The payload of secret version `name` (`projects/P/secrets/S/versions/V`, or a
    regional secret's `projects/P/locations/L/secrets/S/versions/V`), bytes.

    `api_endpoint` defaults to SECRET_MANAGER_API_ENDPOINT, then Google's (for a
    regional secret, its region's `secretmanager.L.rep.googleapis.com`);
    `credentials` to Application Default Credentials. SecretUnavailable for a name of
    another shape, a version that is missing, disabled or not accessible to the
    caller, no credentials, an unreachable service, or a payload whose CRC32C does not
    match the one Secret Manager sent.
    """
    if not SECRET_VERSION.match(name):
        raise SecretUnavailable(
            f"{name!r} is not a Secret Manager secret version ({VERSION_NAME_SHAPES})"
        )
    import google_crc32c  # noqa: PLC0415 -- slow
    from google.api_core import exceptions as google_exceptions  # noqa: PLC0415 -- slow
    from google.auth import exceptions as auth_exceptions  # noqa: PLC0415 -- slow
    from google.cloud import secretmanager  # noqa: PLC0415 -- slow
    from requests import exceptions as requests_exceptions  # noqa: PLC0415 -- slow

    endpoint = api_endpoint or secret_manager_endpoint(name)
    try:
        client = secretmanager.SecretManagerServiceClient(
            credentials=credentials,
            transport="rest",
            client_options={"api_endpoint": endpoint} if endpoint else None,
        )
        response = client.access_secret_version(name=name, timeout=timeout)
    except google_exceptions.NotFound as error:
        raise SecretUnavailable(
            f"Secret Manager has no secret version {name} (or it is disabled or destroyed): "
            f"{error.message}"
        ) from None
    except google_exceptions.Forbidden as error:  # 403 PERMISSION_DENIED
        raise SecretUnavailable(
            f"Secret Manager refused access to {name}: the job's service account needs "
            f"{ACCESSOR_ROLE} on that secret ({error.message})"
        ) from None
    except google_exceptions.Unauthorized as error:
        raise SecretUnavailable(
            f"Secret Manager did not accept the job's credentials for {name}: {error.message}"
        ) from None
    except google_exceptions.GoogleAPICallError as error:
        raise SecretUnavailable(f"Secret Manager could not give {name}: {error}") from None
    except auth_exceptions.GoogleAuthError as error:
        raise SecretUnavailable(
            f"no credentials to read {name} from Secret Manager: {error}"
        ) from None
    except requests_exceptions.RequestException as error:
        raise SecretUnavailable(
            f"Secret Manager could not be reached for {name}: {error}"
        ) from None
    payload = response.payload
    if "data_crc32c" not in payload:
        raise SecretUnavailable(f"Secret Manager sent {name} without its CRC32C; refused")
    checksum = google_crc32c.Checksum()
    checksum.update(payload.data)
    if payload.data_crc32c != int(checksum.hexdigest(), 16):
        raise SecretUnavailable(
            f"the payload of {name} does not match its CRC32C (corrupted in transit); refused"
        )
    return bytes(payload.data)
