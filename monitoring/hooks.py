"""`POST /hooks/alertmanager`: Alertmanager's webhook receiver.

No session and no CSRF token: the proof of origin is the bearer token Alertmanager is
configured with. Alertmanager retries a notification on any answer but 2xx, so refusals
are 401 (token) or 400 (payload, with the fields at fault) and record nothing but the
refusal count; a duplicate is a 200 that changes nothing.
"""

import hmac

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from monitoring.alertmanager import PayloadInvalid, notification_parse
from monitoring.incidents import alertmanager_receive, alertmanager_refuse
from portal.audit.actors import client_ip_for_request
from portal.security.middleware import records_own_refusals


def _error(message: str, status: int, fields: dict | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "fields": fields or {}}, status=status)


def _token_ok(header: str | None) -> bool:
    expected = settings.ALERTMANAGER_WEBHOOK_TOKEN
    scheme, _, token = (header or "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


@csrf_exempt
@records_own_refusals
@require_POST
def alertmanager_webhook(request: HttpRequest) -> JsonResponse:
    client_ip = client_ip_for_request(request)
    if not _token_ok(request.headers.get("Authorization")):
        alertmanager_refuse(reason="missing or wrong bearer token", status=401, client_ip=client_ip)
        response = _error("The notification is not authenticated.", 401)
        response["WWW-Authenticate"] = 'Bearer realm="alertmanager"'
        return response
    try:
        notification = notification_parse(request.body)
    except RequestDataTooBig:
        alertmanager_refuse(reason="body too large", status=400, client_ip=client_ip)
        return _error("The notification is too large.", 400)
    except PayloadInvalid as invalid:
        alertmanager_refuse(reason=str(invalid), status=400, client_ip=client_ip)
        return _error("Not an Alertmanager webhook payload (version 4).", 400, invalid.fields)
    receipt = alertmanager_receive(notification=notification, client_ip=client_ip)
    return JsonResponse(
        {
            "recorded": receipt.recorded,
            "duplicates": receipt.duplicates,
            "incidents": receipt.incidents,
        }
    )
