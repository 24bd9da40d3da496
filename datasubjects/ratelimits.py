"""Rate limits of the public request forms, counted in the shared cache.

A fixed one-hour window per key: the first hit creates the counter with the window as
its lifetime (`add` is atomic in every cache backend we use), later hits increment it.
The cache is Redis in production, so every web pod counts against the same numbers.
"""

from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 3600


def _hit(key: str, limit: int) -> bool:
    """Count one hit; True while the key is within its limit."""
    if cache.add(key, 1, timeout=WINDOW_SECONDS):
        return True
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=WINDOW_SECONDS)
        return True
    return count <= limit


def public_form_allowed(*, subject_ref: str, client_ip: str | None) -> bool:
    """Whether one more request (or code) may be asked for from this address and IP.

    Both counters move on every call, so a client rotating addresses still meets the
    per-IP limit and one address asked from many IPs still meets its own.
    """
    address_ok = _hit(f"dsar:addr:{subject_ref}", settings.DSAR_RATE_LIMIT_PER_ADDRESS)
    ip_ok = _hit(f"dsar:ip:{client_ip or 'unknown'}", settings.DSAR_RATE_LIMIT_PER_IP)
    return address_ok and ip_ok


def public_code_attempt_allowed(
    *, subject_ref: str, client_ip: str | None, attempts_per_code: int
) -> bool:
    """Whether one more verification code may be tried for this address from this IP.

    A code allows `attempts_per_code` tries and its last wrong try sends a new one, so
    without a limit of its own the code form allowed endless guessing (and e-mailed
    the person a code every few guesses). Tries are capped at what the codes the
    request limits allow would take: `attempts_per_code` per allowed request, per
    address and per client IP within the hour.
    """
    address_ok = _hit(
        f"dsar:code:addr:{subject_ref}", settings.DSAR_RATE_LIMIT_PER_ADDRESS * attempts_per_code
    )
    ip_ok = _hit(
        f"dsar:code:ip:{client_ip or 'unknown'}",
        settings.DSAR_RATE_LIMIT_PER_IP * attempts_per_code,
    )
    return address_ok and ip_ok
