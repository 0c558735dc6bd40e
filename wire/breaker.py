"""The project's one circuit breaker (gateway engines and the router Lambda's targets): open after N consecutive
failures, let one probe through after a cool-down. Standard library only, so the Lambda asset vendors it with wire/."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    """The breaker's state; the values are what the gateway's ``llm_gateway_breaker_state`` gauge exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Skip a target after ``failure_threshold`` consecutive failures for ``cooldown_s``; then one probe at a time.

    Args:
        failure_threshold: consecutive failures that open the breaker.
        cooldown_s: how long it stays open before a probe is let through.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, failure_threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self._clock = clock
        self._opened_at: float | None = None
        self._probing = False
        # The gateway runs on one event loop; a Lambda container may run the handler from several threads.
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        """CLOSED, OPEN (cooling down) or HALF_OPEN (a probe may go, or is out)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        return BreakerState.OPEN if self._clock() - self._opened_at < self.cooldown_s else BreakerState.HALF_OPEN

    def allow(self) -> bool:
        """May a request go now? Closed: yes; half-open: one probe at a time; open: no."""
        with self._lock:
            state = self.state
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def retry_in(self) -> float:
        """Seconds until the next probe is allowed (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def success(self) -> None:
        """The target answered: close the breaker."""
        with self._lock:
            self.failures = 0
            self._opened_at = None
            self._probing = False

    def failure(self) -> None:
        """Count a failure; open (or re-open, after a failed probe) when the count reaches the threshold."""
        with self._lock:
            self.failures += 1
            self._probing = False
            if self._opened_at is not None or self.failures >= self.failure_threshold:
                self._opened_at = self._clock()

    def release(self) -> None:
        """A request that neither succeeded nor failed (the client went away): free the probe slot."""
        with self._lock:
            self._probing = False
