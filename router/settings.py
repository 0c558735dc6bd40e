"""The router's settings, read once from the Lambda's ``ROUTER_*`` environment variables.

The CDK hybrid stack writes these variables from the ``router:`` config section; the names are the contract between
the two, so they are listed here in one place (``ENV_VARS``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router.errors import SettingsError

POLICIES = ("local_only", "redact_to_cloud")
TARGETS = ("local", "cloud")

ENV_VARS = (
    "ROUTER_POLICY",
    "ROUTER_COMPLEXITY_THRESHOLD",
    "ROUTER_CUSTOM_PATTERNS",
    "ROUTER_CUSTOM_KEYWORDS",
    "ROUTER_LOCAL_URL",
    "ROUTER_LOCAL_SECRET_ARN",
    "ROUTER_LOCAL_TIMEOUT_S",
    "ROUTER_SAGEMAKER_ENDPOINT",
    "ROUTER_CLOUD_TIMEOUT_S",
    "ROUTER_BREAKER_FAILURES",
    "ROUTER_BREAKER_RESET_S",
    "ROUTER_MAX_BODY_BYTES",
    "ROUTER_DEFAULT_MAX_TOKENS",
    "ROUTER_ALLOW_ROUTE_HINT",
    "ROUTER_CALLER_OVERRIDES",
)


@dataclass(frozen=True)
class CallerOverride:
    """What one caller may change: its policy, its complexity threshold, or a forced target."""

    policy: str | None = None
    complexity_threshold: float | None = None
    force_target: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the router needs, with the same defaults as ``config/router_section.py``."""

    policy: str = "local_only"
    complexity_threshold: float = 0.5
    custom_patterns: tuple[tuple[str, str], ...] = ()
    custom_keywords: tuple[str, ...] = ()
    local_url: str = ""
    local_secret_arn: str = ""
    local_timeout_s: float = 8.0
    sagemaker_endpoint: str = ""
    cloud_timeout_s: float = 20.0
    breaker_failures: int = 3
    breaker_reset_s: float = 30.0
    max_body_bytes: int = 262144
    default_max_tokens: int = 512
    allow_route_hint: bool = True
    caller_overrides: Mapping[str, CallerOverride] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the ``ROUTER_*`` variables.

        Args:
            env: the environment to read (default ``os.environ``); unset variables take the defaults.

        Returns:
            The validated settings.

        Raises:
            SettingsError: a variable is malformed; the message names it and says what is allowed.
        """
        env = os.environ if env is None else env
        d = cls()
        policy = env.get("ROUTER_POLICY", d.policy)
        _choice("ROUTER_POLICY", policy, POLICIES)
        return cls(
            policy=policy,
            complexity_threshold=_float(env, "ROUTER_COMPLEXITY_THRESHOLD", d.complexity_threshold, 0.0, 1.0),
            custom_patterns=_patterns(env.get("ROUTER_CUSTOM_PATTERNS", "[]")),
            custom_keywords=_keywords(env.get("ROUTER_CUSTOM_KEYWORDS", "[]")),
            local_url=_url(env.get("ROUTER_LOCAL_URL", "")),
            local_secret_arn=env.get("ROUTER_LOCAL_SECRET_ARN", ""),
            local_timeout_s=_float(env, "ROUTER_LOCAL_TIMEOUT_S", d.local_timeout_s, 0.001, 900.0),
            sagemaker_endpoint=env.get("ROUTER_SAGEMAKER_ENDPOINT", ""),
            cloud_timeout_s=_float(env, "ROUTER_CLOUD_TIMEOUT_S", d.cloud_timeout_s, 0.001, 900.0),
            breaker_failures=int(_float(env, "ROUTER_BREAKER_FAILURES", d.breaker_failures, 1, 1000)),
            breaker_reset_s=_float(env, "ROUTER_BREAKER_RESET_S", d.breaker_reset_s, 0.0, 86400.0),
            max_body_bytes=int(_float(env, "ROUTER_MAX_BODY_BYTES", d.max_body_bytes, 1, 6_000_000)),
            default_max_tokens=int(_float(env, "ROUTER_DEFAULT_MAX_TOKENS", d.default_max_tokens, 1, 1_000_000)),
            allow_route_hint=_bool(env, "ROUTER_ALLOW_ROUTE_HINT", d.allow_route_hint),
            caller_overrides=_overrides(env.get("ROUTER_CALLER_OVERRIDES", "{}")),
        )

    def for_caller(self, caller: str | None) -> tuple[str, float, str | None]:
        """The policy, threshold and forced target that apply to ``caller`` (overrides win over the defaults)."""
        o = self.caller_overrides.get(caller or "")
        if o is None:
            return self.policy, self.complexity_threshold, None
        return (
            o.policy or self.policy,
            self.complexity_threshold if o.complexity_threshold is None else o.complexity_threshold,
            o.force_target,
        )


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(allowed)}")


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number between {lo:g} and {hi:g}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={raw!r}: expected a number between {lo:g} and {hi:g}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def _url(raw: str) -> str:
    if raw and not re.match(r"^https?://[^\s/]+", raw):
        raise SettingsError(f"ROUTER_LOCAL_URL={raw!r}: expected an http(s) URL")
    return raw.rstrip("/")


def _json(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{name}: not valid JSON ({exc.msg} at position {exc.pos})") from None


def _patterns(raw: str) -> tuple[tuple[str, str], ...]:
    data = _json("ROUTER_CUSTOM_PATTERNS", raw)
    if not isinstance(data, list):
        raise SettingsError('ROUTER_CUSTOM_PATTERNS: expected a JSON list of {"name": str, "regex": str}')
    out = []
    for i, item in enumerate(data):
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("regex"), str)):
            raise SettingsError(f'ROUTER_CUSTOM_PATTERNS[{i}]: expected {{"name": str, "regex": str}}')
        try:
            re.compile(item["regex"])
        except re.error as exc:
            raise SettingsError(f"ROUTER_CUSTOM_PATTERNS[{i}].regex: invalid regular expression ({exc})") from None
        out.append((item["name"], item["regex"]))
    return tuple(out)


def _keywords(raw: str) -> tuple[str, ...]:
    data = _json("ROUTER_CUSTOM_KEYWORDS", raw)
    if not isinstance(data, list) or not all(isinstance(k, str) and k for k in data):
        raise SettingsError("ROUTER_CUSTOM_KEYWORDS: expected a JSON list of non-empty strings")
    return tuple(k.lower() for k in data)


def _overrides(raw: str) -> dict[str, CallerOverride]:
    data = _json("ROUTER_CALLER_OVERRIDES", raw)
    if not isinstance(data, dict):
        raise SettingsError("ROUTER_CALLER_OVERRIDES: expected a JSON object {caller_id: {...}}")
    out = {}
    for caller, o in data.items():
        where = f"ROUTER_CALLER_OVERRIDES[{caller!r}]"
        if not isinstance(o, dict) or set(o) - {"policy", "complexity_threshold", "force_target"}:
            raise SettingsError(f"{where}: expected an object with policy, complexity_threshold, force_target")
        policy, threshold, force = o.get("policy"), o.get("complexity_threshold"), o.get("force_target")
        if policy is not None:
            _choice(f"{where}.policy", policy, POLICIES)
        if force is not None:
            _choice(f"{where}.force_target", force, TARGETS)
        if threshold is not None and not (isinstance(threshold, int | float) and 0 <= threshold <= 1):
            raise SettingsError(f"{where}.complexity_threshold: expected a number between 0 and 1")
        out[caller] = CallerOverride(policy, None if threshold is None else float(threshold), force)
    return out
