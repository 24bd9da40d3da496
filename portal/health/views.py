from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from portal.health.checks import check_broker, check_database


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so a database outage
    does not get every pod restarted."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and the broker answer; 503 takes the pod out of service."""
    results = [check_database(), check_broker()]
    ready = all(result.ok for result in results)
    return JsonResponse(
        {
            "status": "ready" if ready else "unavailable",
            "checks": {
                r.name: {"ok": r.ok, **({"error": r.detail} if r.detail else {})} for r in results
            },
        },
        status=200 if ready else 503,
    )
