"""Defaults and bounds of the router's settings: the one table both sides read.

``config/router_section.py`` (the typed ``router:`` config, pydantic) takes its field defaults and bounds from here,
and ``router/settings.py`` (the Lambda, standard library only) validates the generated ``ROUTER_*`` variables against
the same numbers, so the two cannot drift (``tests/router/test_limits.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

POLICIES = ("local_only", "redact_to_cloud")
TARGETS = ("local", "cloud")
DEFAULT_POLICY: Literal["local_only", "redact_to_cloud"] = "local_only"
DEFAULT_ALLOW_ROUTE_HINT = True


@dataclass(frozen=True)
class Bound:
    """A numeric setting: its default and allowed range (``lo`` excluded when ``lo_open``)."""

    default: float
    lo: float
    hi: float
    lo_open: bool = False
    integer: bool = False

    def allows(self, value: float) -> bool:
        """True when ``value`` is in range."""
        return (value > self.lo if self.lo_open else value >= self.lo) and value <= self.hi

    def describe(self) -> str:
        """``a number > 0 and <= 25`` / ``an integer from 1 to 100``."""
        if self.integer:
            return f"an integer from {self.lo:g} to {self.hi:g}"
        return f"a number {'>' if self.lo_open else '>='} {self.lo:g} and <= {self.hi:g}"


LIMITS: dict[str, Bound] = {
    "complexity_threshold": Bound(0.5, 0.0, 1.0),
    # An HTTP API integration gives up after 30 s; a failover tries both targets (checked in the config section).
    "local_timeout_s": Bound(8.0, 0.0, 25.0, lo_open=True),
    "cloud_timeout_s": Bound(20.0, 0.0, 25.0, lo_open=True),
    "breaker_failures": Bound(3, 1, 100, integer=True),
    "breaker_reset_s": Bound(30.0, 0.0, 3600.0, lo_open=True),
    "max_body_bytes": Bound(262144, 1024, 6_000_000, integer=True),  # Lambda's synchronous payload limit is 6 MB
    "default_max_tokens": Bound(512, 1, 32768, integer=True),
}
