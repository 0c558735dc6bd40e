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
from router.limits import DEFAULT_ALLOW_ROUTE_HINT, DEFAULT_POLICY, LIMITS, POLICIES, TARGETS

__all__ = ["ENV_VARS", "POLICIES", "TARGETS", "CallerOverride", "Settings"]

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
    """Everything the router needs; defaults and bounds from ``router.limits`` (shared with the config section)."""

    policy: str = DEFAULT_POLICY
    complexity_threshold: float = LIMITS["complexity_threshold"].default
    custom_patterns: tuple[tuple[str, str], ...] = ()
    custom_keywords: tuple[str, ...] = ()
    local_url: str = ""
    local_secret_arn: str = ""
    local_timeout_s: float = LIMITS["local_timeout_s"].default
    sagemaker_endpoint: str = ""
    cloud_timeout_s: float = LIMITS["cloud_timeout_s"].default
    breaker_failures: int = int(LIMITS["breaker_failures"].default)
    breaker_reset_s: float = LIMITS["breaker_reset_s"].default
    max_body_bytes: int = int(LIMITS["max_body_bytes"].default)
    default_max_tokens: int = int(LIMITS["default_max_tokens"].default)
    allow_route_hint: bool = DEFAULT_ALLOW_ROUTE_HINT
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
        policy = env.get("ROUTER_POLICY", DEFAULT_POLICY)
        _choice("ROUTER_POLICY", policy, POLICIES)
        return cls(
            policy=policy,
            complexity_threshold=_number(env, "complexity_threshold"),
            custom_patterns=_patterns(env.get("ROUTER_CUSTOM_PATTERNS", "[]")),
            custom_keywords=_keywords(env.get("ROUTER_CUSTOM_KEYWORDS", "[]")),
            local_url=_url(env.get("ROUTER_LOCAL_URL", "")),
            local_secret_arn=env.get("ROUTER_LOCAL_SECRET_ARN", ""),
            local_timeout_s=_number(env, "local_timeout_s"),
            sagemaker_endpoint=env.get("ROUTER_SAGEMAKER_ENDPOINT", ""),
            cloud_timeout_s=_number(env, "cloud_timeout_s"),
            breaker_failures=int(_number(env, "breaker_failures")),
            breaker_reset_s=_number(env, "breaker_reset_s"),
            max_body_bytes=int(_number(env, "max_body_bytes")),
            default_max_tokens=int(_number(env, "default_max_tokens")),
            allow_route_hint=_bool(env, "ROUTER_ALLOW_ROUTE_HINT", DEFAULT_ALLOW_ROUTE_HINT),
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


def _number(env: Mapping[str, str], field_name: str) -> float:
    """``ROUTER_<FIELD>`` checked against ``router.limits.LIMITS[field]`` (unset: the default)."""
    bound = LIMITS[field_name]
    name = f"ROUTER_{field_name.upper()}"
    raw = env.get(name)
    if raw is None or raw == "":
        return float(bound.default)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected {bound.describe()}") from None
    if not bound.allows(value) or (bound.integer and not value.is_integer()):
        raise SettingsError(f"{name}={raw!r}: expected {bound.describe()}")
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
