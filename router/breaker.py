"""One circuit breaker: skip a target after consecutive failures, then let one trial request through."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    """Skip a target after ``failures`` consecutive failures, for ``reset_s``; then let one trial request through.

    Args:
        failures: consecutive failures that open the breaker.
        reset_s: how long it stays open.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open``."""
        if self._opened_at is None:
            return "closed"
        return "open" if self._clock() - self._opened_at < self.reset_s else "half_open"

    def allow(self) -> bool:
        """True when a request may be sent (closed, or half-open for one trial)."""
        with self._lock:
            state = self.state
            if state == "half_open":
                self._opened_at = self._clock()  # the trial holds the breaker open for everyone else
                return True
            return state == "closed"

    def record_success(self) -> None:
        """Close the breaker."""
        with self._lock:
            self._count = 0
            self._opened_at = None

    def record_failure(self) -> None:
        """Count a failure; open the breaker when the count reaches the limit."""
        with self._lock:
            self._count += 1
            if self._count >= self.failures:
                self._opened_at = self._clock()
