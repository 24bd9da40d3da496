"""Per-client rate limits kept in the cache (locmem by default, Redis in production,
so every web pod shares one count)."""

import math

from django.core.cache import cache
from django.utils import timezone


def _window(window_seconds: int) -> tuple[int, float]:
    now = timezone.now().timestamp()
    index = int(now // window_seconds)
    return index, (index + 1) * window_seconds - now


def _key(scope: str, client: str, index: int) -> str:
    return f"ratelimit:{scope}:{client}:{index}"


def rate_limit_retry_after(
    *, scope: str, client: str, limit: int, window_seconds: int
) -> int | None:
    """Seconds until `client` may try again when it has used up `limit` in the current
    window of `scope`, else None."""
    index, remaining = _window(window_seconds)
    if (cache.get(_key(scope, client, index)) or 0) < limit:
        return None
    return max(1, math.ceil(remaining))


def rate_limit_hit(*, scope: str, client: str, window_seconds: int) -> int:
    """Count one hit of `client` in the current window of `scope`; the count so far."""
    index, _ = _window(window_seconds)
    key = _key(scope, client, index)
    cache.add(key, 0, timeout=window_seconds + 5)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window_seconds + 5)
        return 1
