"""Machine endpoints of the review board: the Cloud Deploy approvals push hook.

`POST /hooks/clouddeploy` takes Pub/Sub push requests from the subscription on the
`clouddeploy-approvals` topic. No session and no CSRF token: the proof of origin is the
OIDC token Google signs into `Authorization`. Pub/Sub reads any 2xx as an
acknowledgement and redelivers on anything else, so the answer says whether to try
again: 200 for a message handled (or deliberately refused, or seen before), 401 or
400 for a request that is not a valid push (Pub/Sub retries those, then dead-letters
them), 429 for an address that keeps sending those, 503 while Cloud Deploy cannot be
read. Refused requests are counted, not written to the ledger one row each.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from governance.reviews.clouddeploy_intake import (
    PushDeferred,
    clouddeploy_push_receive,
    clouddeploy_push_refuse,
)
from portal.audit.actors import client_ip_for_request
from portal.pubsub import (
    PushEnvelopeInvalid,
    PushRejected,
    pubsub_push_envelope_parse,
    pubsub_push_verify,
)
from portal.security.middleware import records_own_refusals
from portal.security.ratelimit import rate_limit_hit, rate_limit_retry_after

RATE_LIMIT_SCOPE = "hooks.clouddeploy.refused"


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message, "fields": {}}, status=status)


def _refused(reason: str, status: int, client_ip: str | None) -> None:
    clouddeploy_push_refuse(reason=reason, status=status, client_ip=client_ip)
    rate_limit_hit(scope=RATE_LIMIT_SCOPE, client=client_ip or "unknown", window_seconds=60)


@csrf_exempt
@records_own_refusals
@require_POST
def clouddeploy_push(request: HttpRequest) -> JsonResponse:
    """Verify the push (token first, then the envelope), then one service call.

    A client address that sent HOOK_REFUSAL_LIMIT refused pushes within a minute gets
    429 until the minute is over, before anything else is checked: Google's own pushes
    are never refused, so only a sender that is not Google runs into it.
    """
    client_ip = client_ip_for_request(request)
    retry_after = rate_limit_retry_after(
        scope=RATE_LIMIT_SCOPE,
        client=client_ip or "unknown",
        limit=settings.HOOK_REFUSAL_LIMIT,
        window_seconds=60,
    )
    if retry_after is not None:
        clouddeploy_push_refuse(
            reason="too many refused pushes from this address", status=429, client_ip=client_ip
        )
        response = _error("Too many refused requests; try again later.", 429)
        response["Retry-After"] = str(retry_after)
        return response
    try:
        pubsub_push_verify(
            request.headers.get("Authorization"),
            audience=settings.PUBSUB_PUSH_AUDIENCE,
            service_account_email=settings.PUBSUB_PUSH_SERVICE_ACCOUNT,
        )
    except PushRejected as rejected:
        _refused(rejected.reason, 401, client_ip)
        response = _error("The push request is not authenticated.", 401)
        response["WWW-Authenticate"] = 'Bearer realm="pubsub-push"'
        return response
    try:
        message = pubsub_push_envelope_parse(request.body)
    except RequestDataTooBig:
        _refused("body too large", 400, client_ip)
        return _error("The push body is too large.", 400)
    except PushEnvelopeInvalid as invalid:
        _refused(invalid.reason, 400, client_ip)
        return _error(f"Not a Pub/Sub push envelope: {invalid.reason}.", 400)
    try:
        receipt = clouddeploy_push_receive(message=message, client_ip=client_ip)
    except PushDeferred:
        return _error("Cloud Deploy cannot be read now; deliver the message again later.", 503)
    record = receipt.record
    return JsonResponse(
        {
            "message_id": record.message_id,
            "outcome": record.outcome,
            "duplicate": receipt.duplicate,
            "review": record.review_id,
            "reason": record.reason,
        }
    )
