"""Readiness checks: can this pod reach what it needs to serve requests?"""

from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from kombu import Connection


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""


def check_database(alias: str = "default") -> CheckResult:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means not ready; the reason goes to the body
        connections[alias].close_if_unusable_or_obsolete()
        return CheckResult("database", False, type(exc).__name__)
    return CheckResult("database", True)


def check_broker(timeout: float = 2.0) -> CheckResult:
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}),
            connect_timeout=timeout,
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # any failure means not ready
        return CheckResult("broker", False, type(exc).__name__)
    return CheckResult("broker", True)
