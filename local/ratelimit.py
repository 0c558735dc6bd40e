"""Per-key token buckets (requests per second with a burst), answered as 429 with ``Retry-After``."""

from __future__ import annotations

import math
import time

from local.auth import KeyInfo
from local.errors import GatewayError


class TokenBuckets:
    """One bucket per key digest; refilled lazily on each request (no timer task)."""

    def __init__(self) -> None:
        # digest -> [tokens, last refill time]
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str, info: KeyInfo) -> None:
        """Spend one token for ``key``.

        Raises:
            GatewayError: 429 with ``Retry-After`` (whole seconds) when the bucket is empty.
        """
        now = time.monotonic()
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = [float(info.burst), now]
        tokens = min(float(info.burst), b[0] + (now - b[1]) * info.rate_per_s)
        b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return
        b[0] = tokens
        wait = max(1, math.ceil((1.0 - tokens) / info.rate_per_s))
        raise GatewayError(
            429,
            f"rate limit exceeded for key {info.name!r}: {info.rate_per_s:g} requests/s, burst {info.burst}; "
            f"retry after {wait} s",
            "rate_limit_error",
            None,
            "rate_limit_exceeded",
            headers={"Retry-After": str(wait)},
        )
