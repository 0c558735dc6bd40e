"""Routing policy: privacy first, then complexity. Pure function of what detection and scoring found.

Order of precedence: sensitive data (and content that cannot be scanned) decides first and nothing overrides it;
then a per-caller forced target, then the caller's ``x-route`` hint, then the complexity score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LOCAL = "local"
CLOUD = "cloud"
LOCAL_ONLY = "local_only"
REDACT_TO_CLOUD = "redact_to_cloud"


@dataclass(frozen=True)
class Decision:
    """Where a request goes, where it may fail over to, and why.

    Attributes:
        target: the first target to try.
        fallback: the target to try when ``target`` is unavailable, or None (fail closed).
        reason: a short machine-readable reason (``sensitive_local_only``, ``complex``, ``route_hint``, ...).
        sensitive_types: the detected types (sorted, no values).
        score: the complexity score.
        redact_for_cloud: the request holds sensitive data and may reach the cloud only with it replaced.
    """

    target: str
    fallback: str | None
    reason: str
    sensitive_types: tuple[str, ...]
    score: float
    redact_for_cloud: bool

    def cloud_allowed(self) -> bool:
        """True when the cloud target may see this request (in redacted form if ``redact_for_cloud``)."""
        return CLOUD in (self.target, self.fallback)


def decide(
    *,
    sensitive_types: Sequence[str],
    unscannable: bool,
    score: float,
    policy: str,
    threshold: float,
    force_target: str | None = None,
    hint: str | None = None,
) -> Decision:
    """Decide the route of one request.

    Args:
        sensitive_types: types found by detection (empty when none).
        unscannable: the request holds content detection cannot read (images, audio, files).
        score: complexity score in [0, 1].
        policy: ``local_only`` or ``redact_to_cloud`` for this caller.
        threshold: score at or above which the request is complex.
        force_target: a per-caller forced target from config, if any.
        hint: the ``x-route`` header (``local``/``cloud``), if allowed and given.

    Returns:
        The decision; under ``local_only`` a sensitive request never has the cloud as target or fallback.
    """
    types = tuple(sorted(set(sensitive_types)))
    if unscannable:
        # Nothing can redact an image or a file: it stays local whatever the policy says.
        return Decision(LOCAL, None, "unscannable_content", (*types, "unscannable"), score, False)
    if types:
        if policy == LOCAL_ONLY:
            return Decision(LOCAL, None, "sensitive_local_only", types, score, False)
        wants_local = LOCAL in (force_target, hint)
        if not wants_local and score >= threshold:
            return Decision(CLOUD, LOCAL, "sensitive_redacted", types, score, True)
        return Decision(
            LOCAL, CLOUD, "sensitive_simple" if not wants_local else "sensitive_local_requested", types, score, True
        )
    if force_target is not None:
        return Decision(force_target, _other(force_target), "caller_override", (), score, False)
    if hint is not None:
        return Decision(hint, _other(hint), "route_hint", (), score, False)
    if score >= threshold:
        return Decision(CLOUD, LOCAL, "complex", (), score, False)
    return Decision(LOCAL, CLOUD, "simple", (), score, False)


def _other(target: str) -> str:
    return CLOUD if target == LOCAL else LOCAL
