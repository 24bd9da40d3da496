"""Adapters to outside systems the review board uses, built from settings."""

import google.auth.exceptions
from django.conf import settings
from google.auth.credentials import AnonymousCredentials

from worker.backends.clouddeploy import CloudDeployApprovals, CloudDeployUnavailable


def clouddeploy_approvals() -> CloudDeployApprovals:
    """The Cloud Deploy adapter, configured from settings."""
    endpoint = settings.CLOUD_DEPLOY_API_ENDPOINT
    credentials = None
    # Only a stand-in server (tests, local emulators) runs without Google credentials;
    # otherwise the client library finds the workload identity itself.
    if endpoint.startswith("http://"):
        credentials = AnonymousCredentials()
    try:
        return CloudDeployApprovals(api_endpoint=endpoint or None, credentials=credentials)
    except google.auth.exceptions.GoogleAuthError as exc:
        # No workload identity (e.g. the embedded demo): nothing to retry until configured.
        raise CloudDeployUnavailable(
            f"Cloud Deploy client: no Google credentials: {exc}", retryable=False
        ) from exc
