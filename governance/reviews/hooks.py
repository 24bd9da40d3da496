"""Machine endpoints of the review board: the Cloud Deploy approvals push hook.

`POST /hooks/clouddeploy` takes Pub/Sub push requests from the subscription on the
`clouddeploy-approvals` topic. No session and no CSRF token: the proof of origin is the
OIDC token Google signs into `Authorization`. Pub/Sub reads any 2xx as an
acknowledgement and redelivers on anything else, so the answer says whether to try
again: 200 for a message handled (or deliberately refused, or seen before), 401 or
400 for a request that is not a valid push (Pub/Sub retries those, then dead-letters
them), 503 while Cloud Deploy cannot be read.
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


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message, "fields": {}}, status=status)


@csrf_exempt
@require_POST
def clouddeploy_push(request: HttpRequest) -> JsonResponse:
    """Verify the push (token first, then the envelope), then one service call."""
    client_ip = client_ip_for_request(request)
    try:
        pubsub_push_verify(
            request.headers.get("Authorization"),
            audience=settings.PUBSUB_PUSH_AUDIENCE,
            service_account_email=settings.PUBSUB_PUSH_SERVICE_ACCOUNT,
        )
    except PushRejected as rejected:
        clouddeploy_push_refuse(reason=rejected.reason, status=401, client_ip=client_ip)
        response = _error("The push request is not authenticated.", 401)
        response["WWW-Authenticate"] = 'Bearer realm="pubsub-push"'
        return response
    try:
        message = pubsub_push_envelope_parse(request.body)
    except RequestDataTooBig:
        clouddeploy_push_refuse(reason="body too large", status=400, client_ip=client_ip)
        return _error("The push body is too large.", 400)
    except PushEnvelopeInvalid as invalid:
        clouddeploy_push_refuse(reason=invalid.reason, status=400, client_ip=client_ip)
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
