"""A circuit breaker per engine: open after N consecutive failures, let one probe through after a cool-down."""

from __future__ import annotations

import time
from enum import IntEnum


class BreakerState(IntEnum):
    """Values exported in the ``llm_gateway_breaker_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Not thread-safe on purpose: the gateway runs on one event loop."""

    def __init__(self, failure_threshold: int, cooldown_s: float) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at = 0.0
        self._probing = False
        self.state = BreakerState.CLOSED

    def allow(self) -> bool:
        """May a request go to this engine now? In half-open state only one probe at a time."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and time.monotonic() - self.opened_at >= self.cooldown_s:
            self.state = BreakerState.HALF_OPEN
            self._probing = False
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until the next probe is allowed (0 when closed)."""
        if self.state is BreakerState.CLOSED:
            return 0.0
        return max(0.0, self.cooldown_s - (time.monotonic() - self.opened_at))

    def success(self) -> None:
        self.failures = 0
        self._probing = False
        self.state = BreakerState.CLOSED

    def failure(self) -> None:
        self.failures += 1
        self._probing = False
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at = time.monotonic()

    def release(self) -> None:
        """A request that neither succeeded nor failed (client went away): free the probe slot."""
        self._probing = False
